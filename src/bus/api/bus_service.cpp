#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/json.hpp>
#include <cerrno>
#include <charconv>
#include <future>

#include "bus/api/bus_service_impl.hpp"
#include "bus/engine/embedded_broker.hpp"
#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "runtime/deadline.hpp"
#include "runtime/listener.hpp"
#include "runtime/read_buffer.hpp"

namespace ferry::bus {
namespace {

constexpr std::size_t kMaxRequestBody = 64ull * 1024 * 1024;  // a batch of large events at most
// A connection keeps its body buffer between requests up to this size (a bigger one is freed).
constexpr std::size_t kMaxKeptBodyCapacity = 64 * 1024;
constexpr std::size_t kMaxHeadBytes = 64 * 1024;  // a longer request head is answered 431

BusDuration ToBus(Duration d) { return std::chrono::duration_cast<BusDuration>(d); }

DeliveryOptions ToDelivery(const config::BusDelivery& d) {
  DeliveryOptions o;
  o.lease = ToBus(d.lease);
  o.max_deliveries = d.max_deliveries;
  o.backoff.initial = ToBus(d.backoff.initial);
  o.backoff.max = ToBus(d.backoff.max);
  o.backoff.multiplier = d.backoff.multiplier;
  return o;
}

StorageOptions ToStorage(const config::BusStorage& s) {
  StorageOptions o;
  o.max_message_bytes = static_cast<std::uint32_t>(s.max_message_bytes);
  o.max_bytes = s.max_bytes;
  o.retention.max_age = std::chrono::duration_cast<std::chrono::microseconds>(s.max_age);
  o.retention.max_bytes = s.max_bytes;
  o.retention.delete_consumed = true;  // "keep until consumed": consumed segments go
  return o;
}

template <typename T>
T& Must(Result<T*> r) {
  if (!r) {
    spdlog::critical("bus metrics registration: {}", r.error().message());
    std::abort();
  }
  return **r;
}

}  // namespace

Result<std::unique_ptr<BusService>> BusService::Create(const config::Config& config,
                                                       observability::MetricsRegistry& metrics,
                                                       std::size_t metrics_slot) {
  if (!config.bus) return Fail(ErrorCode::kInvalidArgument, "no bus: block in the config");
  return std::unique_ptr<BusService>(new BusServiceImpl(config, metrics, metrics_slot));
}

BusServiceImpl::BusServiceImpl(const config::Config& config,
                               observability::MetricsRegistry& registry, std::size_t slot)
    : config_(std::make_shared<const config::Config>(config)),
      started_with_(config_),
      bus_(*started_with_->bus),
      registry_(registry),
      slot_(slot),
      tick_timer_(io_),
      maintenance_timer_(io_),
      stop_timer_(io_) {
  auto& r = registry_;
  metrics_.published = &Must(r.AddCounter("ferry_bus_published_total",
                                          "Publishes answered, by destination and result "
                                          "(stored, duplicate, rejected).",
                                          {"destination", "result"}));
  metrics_.publish_latency = &Must(
      r.AddHistogram("ferry_bus_publish_duration_seconds",
                     "Time from a publish request to its acknowledgement (durable in batch mode).",
                     {"destination"}));
  metrics_.deliveries =
      &Must(r.AddCounter("ferry_bus_deliveries_total",
                         "Deliveries made, by inbox and mode (pull, push).", {"inbox", "mode"}));
  metrics_.end_to_end = &Must(r.AddHistogram(
      "ferry_bus_end_to_end_seconds", "Time from publish to the first delivery.", {"inbox"}));
  metrics_.depth = &Must(r.AddGauge("ferry_bus_depth", "Messages ready for delivery.", {"inbox"}));
  metrics_.in_flight =
      &Must(r.AddGauge("ferry_bus_in_flight", "Deliveries leased and not yet settled.", {"inbox"}));
  metrics_.dead_letters =
      &Must(r.AddGauge("ferry_bus_dead_letters", "Messages in the dead letters.", {"inbox"}));
  metrics_.redeliveries = &Must(
      r.AddGauge("ferry_bus_redeliveries", "Redeliveries (attempt > 1) since start.", {"inbox"}));
  metrics_.fsync_rounds = &Must(r.AddGauge("ferry_bus_fsync_batches",
                                           "fsync rounds (group commits) since start; records "
                                           "per batch = ferry_bus_fsync_records / this.",
                                           {"log"}));
  metrics_.fsync_records = &Must(r.AddGauge(
      "ferry_bus_fsync_records", "Records made durable by fsync rounds since start.", {"log"}));
  metrics_.retention_dropped = &Must(
      r.AddGauge("ferry_bus_retention_dropped_unconsumed",
                 "Unconsumed records retention deleted since start because they were older than "
                 "the log's max_age.",
                 {"log"}));
  metrics_.fsync_duration = &Must(r.AddHistogram(
      "ferry_bus_fsync_duration_seconds",
      "Duration of one fsync round (group commit) of a bus log, its fsyncs together.", {"log"}));
  metrics_.fsync_batch = &Must(r.AddHistogram(
      "ferry_bus_fsync_batch_records", "Records one fsync round (group commit) made durable.",
      {"log"}, {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536}));
  metrics_.push_results = &Must(r.AddCounter("ferry_bus_push_total",
                                             "Push deliveries by result (acked, failed, timeout).",
                                             {"inbox", "result"}));
}

BusServiceImpl::~BusServiceImpl() { Stop(); }

Result<void> BusServiceImpl::OpenBroker() {
  BrokerOptions options;
  options.data_dir = bus_.data_dir;
  options.durability =
      bus_.durability == config::BusDurability::kBatch ? Durability::kBatch : Durability::kInterval;
  options.sync_interval = std::chrono::duration_cast<std::chrono::milliseconds>(bus_.sync_interval);
  options.dedupe_window = ToBus(bus_.dedupe_window);
  options.segment_bytes = bus_.segment_bytes;
  options.state_checkpoint_bytes = bus_.state_checkpoint_bytes;
  options.post = [this](std::function<void()> task) { asio::post(io_, std::move(task)); };
  options.on_sync_round = [this](const std::string& log, const SyncRoundInfo& round) {
    metrics_.fsync_duration->Get(log).Observe(
        slot_, std::chrono::duration<double>(round.duration).count());
    metrics_.fsync_batch->Get(log).Observe(slot_, static_cast<double>(round.records));
  };
  auto broker = EmbeddedBroker::Open(std::move(options));
  if (!broker) return tl::unexpected(broker.error());
  broker_ = std::move(*broker);
  return Declare();
}

Result<void> BusServiceImpl::Declare() {
  const config::Bus& bus = *config_->bus;
  for (const auto& [name, q] : bus.queues) {
    QueueOptions o;
    o.delivery = ToDelivery(q.delivery);
    o.storage = ToStorage(q.storage);
    if (auto r = broker_->CreateQueue(name, o); !r) return r;
    WatchInbox(Inbox::Queue(name));
    std::optional<PushOptions> push;
    if (q.push) {
      push =
          PushOptions{q.push->service, q.push->path, ToBus(q.push->timeout), q.push->concurrency};
    }
    SetPush(Inbox::Queue(name), push);
  }
  for (const auto& [name, t] : bus.topics) {
    TopicOptions o;
    o.storage = ToStorage(t.storage);
    if (auto r = broker_->CreateTopic(name, o); !r) return r;
    for (const auto& [sub_name, s] : t.subscriptions) {
      SubscriptionOptions so;
      so.delivery = ToDelivery(s.delivery);
      so.filter = {s.filter.type, s.filter.source, s.filter.subject};
      so.from_beginning = s.from_beginning;
      // Stored with the rest, so the options show it and it stays if the subscription leaves
      // the config (it lives on in data_dir, as one made by PUT does).
      if (s.push) {
        so.push =
            PushOptions{s.push->service, s.push->path, ToBus(s.push->timeout), s.push->concurrency};
      }
      if (auto r = broker_->CreateSubscription(name, sub_name, so); !r) return r;
    }
    // Every subscription, from the config or made through the API (those persist in the data
    // directory), is watched and pushes as its stored options say (a PUT may have set it).
    auto subs = broker_->Subscriptions(name);
    if (!subs) return tl::unexpected(subs.error());
    for (const std::string& sub_name : *subs) {
      const Inbox inbox = Inbox::Subscription(name, sub_name);
      WatchInbox(inbox);
      auto options = broker_->GetSubscriptionOptions(name, sub_name);
      if (!options) return tl::unexpected(options.error());
      SetPush(inbox, options->push);
    }
  }
  return Ok();
}

void BusServiceImpl::WarnUnappliedReload(const config::Bus& next) const {
  std::vector<std::string> fields;
  if (!(next.listen == bus_.listen)) fields.emplace_back("listen");
  if (next.data_dir != bus_.data_dir) fields.emplace_back("data_dir");
  if (next.durability != bus_.durability) fields.emplace_back("durability");
  if (next.sync_interval != bus_.sync_interval) fields.emplace_back("sync_interval");
  if (next.dedupe_window != bus_.dedupe_window) fields.emplace_back("dedupe_window");
  if (next.segment_bytes != bus_.segment_bytes) fields.emplace_back("segment_bytes");
  if (next.state_checkpoint_bytes != bus_.state_checkpoint_bytes) {
    fields.emplace_back("state_checkpoint_bytes");
  }
  if (!fields.empty()) {
    spdlog::warn("reload: bus.{} change only on restart; the bus runs on with the old values",
                 fmt::join(fields, ", bus."));
  }
  const config::Bus& now = *config_->bus;
  for (const auto& [name, ignored] : now.queues) {
    if (!next.queues.contains(name)) {
      spdlog::warn("reload: queue {} left the config; it runs on until the next restart", name);
    }
  }
  for (const auto& [name, ignored] : now.topics) {
    if (!next.topics.contains(name)) {
      spdlog::warn("reload: topic {} left the config; it runs on until the next restart", name);
    }
  }
}

Result<void> BusServiceImpl::Reload(std::shared_ptr<const config::Config> next) {
  if (!next->bus) return Fail(ErrorCode::kInvalidArgument, "no bus: block in the config");
  if (!thread_.joinable()) return Fail(ErrorCode::kFailedPrecondition, "the bus is not running");
  std::promise<Result<void>> declared;
  auto result = declared.get_future();
  asio::post(io_, [this, &declared, next = std::move(next)]() mutable {
    if (stopping_ || !broker_) {
      declared.set_value(Fail(ErrorCode::kFailedPrecondition, "the bus is stopping"));
      return;
    }
    WarnUnappliedReload(*next->bus);
    config_ = std::move(next);
    declared.set_value(Declare());
  });
  return result.get();
}

Result<void> BusServiceImpl::Start() {
  auto acceptor = runtime::OpenListener(io_, bus_.listen, /*reuse_port=*/false, 1024);
  if (!acceptor) return tl::unexpected(acceptor.error());
  acceptor_ = std::make_unique<tcp::acceptor>(std::move(*acceptor));
  error_code ec;
  const tcp::endpoint ep = acceptor_->local_endpoint(ec);
  listen_address_ = fmt::format("{}:{}", ep.address().to_string(), ep.port());
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  // The broker is created and used only on the bus thread.
  std::promise<Result<void>> opened;
  auto opened_future = opened.get_future();
  thread_ = std::thread([this, &opened] {
    pthread_setname_np(pthread_self(), "ferry-bus");
    auto r = OpenBroker();
    const bool ok = r.has_value();
    opened.set_value(std::move(r));
    if (!ok) return;
    asio::co_spawn(io_, AcceptLoop(), asio::detached);
    ArmTick();
    ArmMaintenance();
    io_.run();
  });
  auto result = opened_future.get();
  if (!result) {
    thread_.join();
    return result;
  }
  spdlog::info("bus API on {} (data in {}, durability {})", listen_address_, bus_.data_dir,
               bus_.durability == config::BusDurability::kBatch ? "batch" : "interval");
  return Ok();
}

void BusServiceImpl::Stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    stopping_ = true;
    error_code ignored;
    if (acceptor_) acceptor_->close(ignored);
    tick_timer_.cancel();
    maintenance_timer_.cancel();
    for (auto& [inbox, timers] : waiters_) {
      for (asio::steady_timer* t : timers) t->cancel();
    }
  });
  // Give answers in flight a moment, then end the loop and close the logs on this thread.
  asio::post(io_, [this] {
    stop_timer_.expires_after(std::chrono::milliseconds(200));
    stop_timer_.async_wait([this](const error_code&) {
      broker_.reset();  // syncs and closes the logs
      io_.stop();
    });
  });
  work_.reset();
  thread_.join();
  // A resolution in getaddrinfo ends first; its answer, posted to the stopped loop, is dropped.
  resolve_pool_.stop();
  resolve_pool_.join();
}

Task<void> BusServiceImpl::AcceptLoop() {
  while (acceptor_->is_open()) {
    auto [ec, socket] = co_await acceptor_->async_accept(kNoThrow);
    if (ec) {
      if (!acceptor_->is_open() || ec == asio::error::operation_aborted) break;
      continue;
    }
    error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    asio::co_spawn(io_, Serve(std::move(socket)), asio::detached);
  }
}

namespace {

// The wire form of an API answer; a 204 has no body and no content headers.
// Writes the reply into `out` (reused per connection, so its capacity is too): one append per
// piece, no format-string parsing on the hot path.
void RenderReply(const ApiResponse& r, bool keep, std::string* out) {
  const auto append_number = [out](std::uint64_t value) {
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
    out->append(digits, end);
  };
  out->clear();
  out->append("HTTP/1.1 ");
  append_number(static_cast<std::uint64_t>(r.status));
  out->push_back(' ');
  out->append(http::ReasonPhrase(r.status));
  out->append("\r\n");
  if (r.status != 204) {
    out->append("content-type: application/json\r\ncontent-length: ");
    append_number(r.body.size());
    out->append("\r\n");
  }
  if (!r.allow.empty()) {
    out->append("allow: ");
    out->append(r.allow);
    out->append("\r\n");
  }
  if (!keep) out->append("connection: close\r\n");
  out->append("\r\n");
  if (r.status != 204) out->append(r.body);
}

}  // namespace

Task<void> BusServiceImpl::Serve(tcp::socket socket) {
  runtime::Deadline<tcp::socket> deadline(io_, socket);
  // A client that closed its side while its long-poll waited shows EOF (or an error) here.
  const std::function<bool()> client_alive = [&socket] {
    char byte;
    const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  };
  // Reads go straight into `in`, a pooled buffer held only while it has unread bytes. A body
  // that came whole within it is handed on as a view of it; only a body spread over several
  // reads is gathered into `body` (reused per request, as `reply` is, capacity and all).
  runtime::ReadBuffer in(buffers_);
  std::string body;
  std::string reply;
  http::Parser parser(http::Parser::Kind::kRequest);
  for (;;) {
    if (in.empty()) in.Release();  // an idle keep-alive connection holds no buffer
    // A long-poll may hold the request open for its wait; the read deadline covers the rest.
    deadline.Arm(std::chrono::seconds(60));
    http::HeadScanner scanner({kMaxHeadBytes, 100});
    http::HeadScanner::State state;
    while ((state = scanner.Scan(in.data())) == http::HeadScanner::State::kIncomplete) {
      // `in` grows for a long head up to the scanner's limit, which answers 431 before that.
      if (in.full() && !in.Grow(kMaxHeadBytes + 1)) co_return;
      auto [ec, n] =
          co_await socket.async_read_some(asio::buffer(in.WritePtr(), in.WriteSpace()), kNoThrow);
      if (ec) co_return;
      in.Commit(n);
    }
    ApiResponse response;
    bool keep = false;
    bool refused_unread = false;  // answered before its body was read: that body is unread
    if (state != http::HeadScanner::State::kComplete) {
      response = state == http::HeadScanner::State::kMalformed
                     ? ErrorReply(400, "bad_request", scanner.error())
                     : ErrorReply(431, "headers_too_large", "request head too large");
    } else {
      parser.Reset();
      auto consumed = parser.Feed(in.data().substr(0, scanner.head_size()));
      body.clear();
      if (body.capacity() > kMaxKeptBodyCapacity) std::string().swap(body);
      std::string_view body_view;    // the whole body, once the message is done
      std::size_t body_in_view = 0;  // bytes of `in` that body_view still points into
      bool ok = consumed.has_value();
      std::string error = ok ? "" : consumed.error().message();
      if (ok) in.Consume(*consumed);
      // Expect: 100-continue (RFC 9110, 10.1.1) is answered before the body is read: 413 at once
      // for a declared length over the limit (so is a request without it: reading 64 MiB to
      // refuse it helps nobody), else 100 if the body has not started to arrive.
      if (ok && parser.request().framing == http::BodyFraming::kContentLength &&
          parser.request().content_length > kMaxRequestBody) {
        ok = false;
        error = "request body too large";
        refused_unread = true;
      } else if (ok && parser.request().expect_continue && parser.request().version_minor >= 1 &&
                 !parser.message_done() && in.empty()) {
        static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
        auto [ec, n] = co_await asio::async_write(
            socket, asio::buffer(kContinue.data(), kContinue.size()), kNoThrow);
        if (ec) co_return;
      }
      while (ok && !parser.message_done()) {
        if (!in.empty()) {
          auto n = parser.Feed(in.data());
          if (!n) {
            ok = false;
            error = n.error().message();
            break;
          }
          auto& chunks = parser.body_chunks();
          if (parser.message_done() && body.empty() && chunks.size() == 1) {
            body_view = chunks.front();  // the common case: the body came whole, no copy
            body_in_view = *n;
          } else {
            for (std::string_view chunk : chunks) body.append(chunk);
            in.Consume(*n);
          }
          chunks.clear();
          if (body.size() > kMaxRequestBody) {
            ok = false;
            error = "request body too large";
            break;
          }
          continue;
        }
        auto [ec, n] =
            co_await socket.async_read_some(asio::buffer(in.WritePtr(), in.WriteSpace()), kNoThrow);
        if (ec) co_return;
        in.Commit(n);  // `in` was empty: the body is read into its whole space
      }
      if (!ok) {
        response = error == "request body too large" ? ErrorReply(413, "body_too_large", error)
                                                     : ErrorReply(400, "bad_request", error);
      } else {
        if (body_in_view == 0) {
          body_view = body;
          if (in.empty()) in.Release();  // a long-poll waits without a buffer
        }
        deadline.Disarm();
        const http::RequestHead& head = parser.request();
        response = co_await Handle(head, body_view, client_alive);
        keep = head.keep_alive && !stopping_;
      }
      in.Consume(body_in_view);
    }
    deadline.Arm(std::chrono::seconds(30));
    RenderReply(response, keep, &reply);
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(reply), kNoThrow);
    if (!ec && refused_unread) {
      // Closing with unread bytes would send a reset, which can destroy the answer before the
      // client reads it: say we are done, then read and drop what it still sends, briefly.
      error_code ignored;
      socket.shutdown(tcp::socket::shutdown_send, ignored);
      deadline.Arm(std::chrono::seconds(2));
      std::vector<char> sink(16 * 1024);
      for (std::size_t dropped = 0; dropped < kMaxRequestBody;) {
        auto [read_ec, got] = co_await socket.async_read_some(asio::buffer(sink), kNoThrow);
        if (read_ec) break;
        dropped += got;
      }
      co_return;
    }
    if (ec || !keep) break;
  }
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

void BusServiceImpl::WatchInbox(const Inbox& inbox) {
  const std::string key = inbox.ToString();
  waiters_[key];
  (void)broker_->SetReadyListener(inbox, [this, key] { NotifyInbox(key); });
}

void BusServiceImpl::NotifyInbox(const std::string& inbox) {
  auto it = waiters_.find(inbox);
  if (it == waiters_.end()) return;
  for (asio::steady_timer* t : it->second) t->cancel();
}

Task<bool> BusServiceImpl::WaitReady(const std::string& inbox,
                                     std::chrono::steady_clock::time_point deadline) {
  if (stopping_) co_return false;
  asio::steady_timer timer(io_, deadline);
  auto& list = waiters_[inbox];
  auto it = list.insert(list.end(), &timer);
  co_await timer.async_wait(kNoThrow);  // cancelled when the inbox may have messages
  waiters_[inbox].erase(it);
  co_return !stopping_;
}

void BusServiceImpl::ArmTick() {
  if (stopping_ || !broker_) return;
  const auto next = broker_->NextWakeup();
  std::chrono::steady_clock::duration wait = std::chrono::seconds(1);
  if (next) {
    wait = std::max<std::chrono::steady_clock::duration>(
        std::chrono::milliseconds(1), std::min<std::chrono::steady_clock::duration>(
                                          *next - std::chrono::system_clock::now(), wait));
  }
  const auto at = std::chrono::steady_clock::now() + wait;
  if (tick_at_ && *tick_at_ <= at) return;  // the armed tick comes first; it re-arms then
  tick_at_ = at;
  tick_timer_.expires_at(at);
  tick_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;  // cancelled: replaced by an earlier tick (or stopping)
    tick_at_.reset();
    if (stopping_) return;
    broker_->Tick();
    ArmTick();
  });
}

void BusServiceImpl::ArmMaintenance() {
  maintenance_timer_.expires_after(std::chrono::seconds(1));
  maintenance_timer_.async_wait([this](const error_code& ec) {
    if (ec || stopping_) return;
    broker_->SampleRates();
    RefreshGauges();
    SweepPushConnections();
    ResolvePushEndpoints();
    if (++maintenance_rounds_ % 5 == 0) {
      broker_->EnforceRetention([](const Result<void>& r) {
        if (!r) spdlog::warn("bus retention: {}", r.error().message());
      });
    }
    ArmMaintenance();
  });
}

void BusServiceImpl::RefreshGauges() {
  auto set_inbox = [&](const std::string& inbox, const InboxStats& s) {
    metrics_.depth->Get(inbox).Set(slot_, static_cast<std::int64_t>(s.ready + s.backlog));
    metrics_.in_flight->Get(inbox).Set(slot_, static_cast<std::int64_t>(s.in_flight));
    metrics_.dead_letters->Get(inbox).Set(slot_, static_cast<std::int64_t>(s.dead_letters));
    metrics_.redeliveries->Get(inbox).Set(slot_, static_cast<std::int64_t>(s.redelivered));
  };
  auto set_log = [&](const std::string& log, const LogDurabilityStats& s) {
    metrics_.fsync_rounds->Get(log).Set(slot_, static_cast<std::int64_t>(s.sync_rounds));
    metrics_.fsync_records->Get(log).Set(slot_, static_cast<std::int64_t>(s.synced_records));
  };
  // Only message logs have a max_age, so only they get the series.
  auto set_message_log = [&](const std::string& log, const LogDurabilityStats& s) {
    set_log(log, s);
    metrics_.retention_dropped->Get(log).Set(
        slot_, static_cast<std::int64_t>(s.retention_dropped_unconsumed));
  };
  for (const std::string& q : broker_->Queues()) {
    if (auto s = broker_->GetQueueStats(q)) {
      set_inbox(q, s->inbox);
      set_message_log("queues/" + q + "/messages", s->messages);
      set_log("queues/" + q + "/state", s->state);
    }
  }
  for (const std::string& t : broker_->Topics()) {
    if (auto s = broker_->GetTopicStats(t)) {
      set_message_log("topics/" + t + "/messages", s->messages);
      for (const auto& sub : s->subscriptions) {
        set_inbox(t + "/" + sub.name, sub.inbox);
        set_log("topics/" + t + "/subscriptions/" + sub.name, sub.state);
      }
    }
  }
}

}  // namespace ferry::bus
