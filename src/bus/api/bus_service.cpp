#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <future>

#include "access/authz_metrics.hpp"
#include "bus/api/bus_service_impl.hpp"
#include "bus/broker_factory.hpp"
#include "runtime/acceptor.hpp"
#include "runtime/stream.hpp"
#include "server/handshake_failures.hpp"

namespace ferry::bus {
namespace {

constexpr std::size_t kMaxRequestBody = 64ull * 1024 * 1024;  // a batch of large events at most

// The API's HTTP (src/server): a longer head is answered 431, a longer body 413 (a declared
// one before it is read, instead of a 100 Continue). A long-poll holds its request open for its
// wait, so the server puts no limit on a request as a whole; each body read and response write
// must progress within io_timeout.
server::ServerOptions ApiServerOptions() {
  server::ServerOptions o;
  o.max_header_bytes = 64 * 1024;
  o.max_headers = 100;
  o.max_body_bytes = kMaxRequestBody;
  o.header_read_timeout = std::chrono::seconds(60);
  o.idle_timeout = std::chrono::seconds(60);
  o.request_timeout = Duration::zero();
  o.io_timeout = std::chrono::seconds(30);
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
      handshake_failures_(server::HandshakeFailures(registry)),
      tick_timer_(io_),
      maintenance_timer_(io_),
      stop_timer_(io_) {
  hub_ = std::make_unique<TopicHub>(TopicHub::Env{
      .post = [this](std::function<void()> task) { asio::post(io_, std::move(task)); },
      .broker = [this] { return broker_.get(); },
      .defaults =
          [this](const std::string& topic) { return DefaultsFor(Destination::Topic(topic)); },
  });
  auto& r = registry_;
  access_ = std::make_unique<const BusAccess>(*config_, access::RegisterAuthzDecisions(r));
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
  metrics_.push_results = &Must(r.AddCounter("ferry_bus_push_total",
                                             "Push deliveries by result (acked, failed, timeout).",
                                             {"inbox", "result"}));
}

BusServiceImpl::~BusServiceImpl() { Stop(); }

Result<void> BusServiceImpl::OpenBroker() {
  BrokerEnvironment env;
  env.post = [this](std::function<void()> task) { asio::post(io_, std::move(task)); };
  env.metrics = &registry_;  // the backend registers its own metrics (the log's fsync rounds)
  env.slot = slot_;
  auto broker = CreateBroker(bus_, std::move(env));
  if (!broker) return tl::unexpected(broker.error());
  broker_ = std::move(*broker);
  available_probe_ = broker_.get();
  return Declare();
}

Result<void> BusServiceImpl::Declare() {
  const config::Bus& bus = *config_->bus;
  // The config's types are the broker's options (broker_options.hpp): given as they are.
  for (const auto& [name, q] : bus.queues) {
    if (auto r = broker_->CreateQueue(name, q); !r) return r;
    WatchInbox(Inbox::Queue(name));
    SetPush(Inbox::Queue(name), q.push);
  }
  for (const auto& [name, t] : bus.topics) {
    if (auto r = broker_->CreateTopic(name, t); !r) return r;
    for (const auto& [sub_name, s] : t.subscriptions) {
      // Its push is stored with the rest, so the options show it and it stays if the
      // subscription leaves the config (it lives on in data_dir, as one made by PUT does).
      if (auto r = broker_->CreateSubscription(name, sub_name, s); !r) return r;
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
  if (next.backend != bus_.backend) fields.emplace_back("backend");
  if (next.nats != bus_.nats) fields.emplace_back("nats");
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
    access_ =
        std::make_unique<const BusAccess>(*config_, access::RegisterAuthzDecisions(registry_));
    declared.set_value(Declare());
  });
  return result.get();
}

void BusServiceImpl::SetListenerTls(std::shared_ptr<const tls::ServerContext> context) {
  if (!server_ || !thread_.joinable()) {
    listener_tls_ = std::move(context);
    return;
  }
  asio::post(io_, [this, context = std::move(context)] {
    server::ServerOptions options = ApiServerOptions();
    options.tls = context;
    if (server_) server_->SetOptions(options);
  });
}

Result<void> BusServiceImpl::Start() {
  auto acceptor = runtime::Acceptor::Open(io_, bus_.listen, /*reuse_port=*/false, 1024);
  if (!acceptor) return tl::unexpected(acceptor.error());
  listen_address_ = (*acceptor)->local_address();
  server::ServerOptions options = ApiServerOptions();
  options.tls = listener_tls_;
  server_ = std::make_unique<server::Server>(io_, options, *this);
  work_ = std::make_unique<asio::executor_work_guard<asio::io_context::executor_type>>(
      io_.get_executor());
  // The broker is created and used only on the bus thread.
  std::promise<Result<void>> opened;
  auto opened_future = opened.get_future();
  thread_ = std::thread([this, &opened, acceptor = std::move(*acceptor)]() mutable {
    pthread_setname_np(pthread_self(), "ferry-bus");
    auto r = OpenBroker();
    const bool ok = r.has_value();
    opened.set_value(std::move(r));
    if (!ok) return;
    server_->Listen(std::move(acceptor));
    ArmTick();
    ArmMaintenance();
    io_.run();
  });
  auto result = opened_future.get();
  if (!result) {
    thread_.join();
    return result;
  }
  if (bus_.backend == config::BusBackend::kNats) {
    spdlog::info("bus API on {} (NATS JetStream at {}, replicas {})", listen_address_,
                 fmt::join(bus_.nats->servers, ", "), bus_.nats->replicas);
  } else {
    spdlog::info("bus API on {} (data in {}, durability {})", listen_address_, bus_.data_dir,
                 bus_.durability == config::BusDurability::kBatch ? "batch" : "interval");
  }
  return Ok();
}

void BusServiceImpl::Stop() {
  if (!thread_.joinable()) return;
  asio::post(io_, [this] {
    stopping_ = true;
    // No new connection or request; idle connections close, answers in flight say close.
    if (server_) server_->Drain();
    tick_timer_.cancel();
    maintenance_timer_.cancel();
    for (auto& [inbox, waiting] : waiters_) {
      for (asio::steady_timer* t : waiting.timers) t->cancel();
    }
  });
  // Give answers in flight a moment, then end the loop and close the logs on this thread.
  asio::post(io_, [this] {
    stop_timer_.expires_after(std::chrono::milliseconds(200));
    stop_timer_.async_wait([this](const error_code&) {
      if (server_) server_->Close();  // what is left of the API's connections ends now
      push_tasks_.CancelAll();
      available_probe_ = nullptr;
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

Result<void> BusServiceImpl::OpenInline() {
  server_ = std::make_unique<server::Server>(io_, ApiServerOptions(), *this);
  return OpenBroker();
}

void BusServiceImpl::ServeInline(std::unique_ptr<runtime::Stream> stream) {
  server_->Serve(std::move(stream));
}

void BusServiceImpl::CloseInline() {
  stopping_ = true;
  tick_timer_.cancel();
  maintenance_timer_.cancel();
  for (auto& [inbox, waiting] : waiters_) {
    for (asio::steady_timer* t : waiting.timers) t->cancel();
  }
  if (server_) server_->Close();
  push_tasks_.CancelAll();
  io_.restart();
  io_.poll();
  available_probe_ = nullptr;
  broker_.reset();
  io_.restart();
  io_.poll();
}

Task<void> BusServiceImpl::Serve(server::Request& request, server::Response& response) {
  // bus_api.cpp reads an http::RequestHead: the head's strings are swapped in and back, not
  // copied.
  http::RequestHead head;
  server::RequestHead& in = request.head();
  std::swap(head.method, in.method);
  std::swap(head.target, in.target);
  std::swap(head.headers, in.headers);
  ApiResponse answer;
  // Who calls is known from the head: a refused request is answered before its body is read.
  std::optional<ApiResponse> early = access_->Admit(head, request.peer().identity, slot_);
  // Expect: 100-continue (RFC 9110, 10.1.1): an answer the body cannot change is given at once,
  // instead of the 100 (reading the body sends the 100).
  if (!early && request.expects_continue()) early = AnswerBeforeBody(head);
  bool answered = true;
  if (early) {
    answer = std::move(*early);
  } else {
    auto body = co_await request.ReadWhole(kMaxRequestBody);
    if (body) {
      // A client that closed its side while its long-poll waited is not leased a message.
      const std::function<bool()> client_alive = [&request] { return !request.ClientGone(); };
      answer = co_await Handle(head, *body, client_alive);
    } else {
      answered = false;  // the server answers 400, 408 or 413, or the client has gone
    }
  }
  std::swap(head.method, in.method);
  std::swap(head.target, in.target);
  std::swap(head.headers, in.headers);
  if (!answered) co_return;
  // A 204 has no body and no content headers.
  server::ResponseHead out;
  out.status = answer.status;
  if (answer.status != 204) out.headers.Add("content-type", "application/json");
  if (!answer.allow.empty()) out.headers.Add("allow", answer.allow);
  if (!answer.www_authenticate.empty()) {
    out.headers.Add("www-authenticate", answer.www_authenticate);
  }
  if (!answer.retry_after.empty()) out.headers.Add("retry-after", answer.retry_after);
  if (answer.status == 204) answer.body.clear();
  co_await response.Send(out, answer.body);
}

void BusServiceImpl::HandshakeFailed() {
  if (handshake_failures_ != nullptr) handshake_failures_->Add(slot_);
}

void BusServiceImpl::WatchInbox(const Inbox& inbox) {
  const std::string key = inbox.ToString();
  waiters_[key];
  (void)broker_->SetReadyListener(inbox, [this, key] { NotifyInbox(key); });
}

void BusServiceImpl::NotifyInbox(const std::string& inbox) {
  auto it = waiters_.find(inbox);
  if (it == waiters_.end()) return;
  ++it->second.notified;
  for (asio::steady_timer* t : it->second.timers) t->cancel();
}

std::uint64_t BusServiceImpl::Notifications(const std::string& inbox) const {
  auto it = waiters_.find(inbox);
  return it == waiters_.end() ? 0 : it->second.notified;
}

Task<bool> BusServiceImpl::WaitReady(const std::string& inbox, std::uint64_t seen,
                                     std::chrono::steady_clock::time_point deadline) {
  if (stopping_) co_return false;
  if (Notifications(inbox) != seen) co_return true;  // notified while the Receive was answered
  asio::steady_timer timer(io_, deadline);
  auto& list = waiters_[inbox].timers;
  auto it = list.insert(list.end(), &timer);
  co_await timer.async_wait(kNoThrow);  // cancelled when the inbox may have messages
  waiters_[inbox].timers.erase(it);
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
  for (const std::string& q : broker_->Queues()) {
    if (auto s = broker_->GetQueueStats(q)) set_inbox(q, s->inbox);
  }
  for (const std::string& t : broker_->Topics()) {
    if (auto s = broker_->GetTopicStats(t)) {
      for (const auto& sub : s->subscriptions) set_inbox(t + "/" + sub.name, sub.inbox);
    }
  }
}

}  // namespace ferry::bus
