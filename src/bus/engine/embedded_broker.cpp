#include "bus/engine/embedded_broker.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "bus/engine/channel.hpp"
#include "bus/engine/dedupe_index.hpp"
#include "bus/engine/dispatcher.hpp"
#include "bus/engine/message_codec.hpp"
#include "bus/engine/rate_meter.hpp"
#include "bus/log/posix_file_system.hpp"
#include "bus/retention_policy.hpp"

namespace ferry::bus {
namespace {

constexpr std::size_t kMaxNameLength = 128;

Result<void> CheckName(std::string_view what, const std::string& name) {
  const bool ok = !name.empty() && name.size() <= kMaxNameLength && name != "." && name != ".." &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
                  });
  if (ok) return Ok();
  return Fail(
      ErrorCode::kInvalidArgument,
      fmt::format("bad {} name \"{}\": use 1 to {} of [A-Za-z0-9._-]", what, name, kMaxNameLength));
}

// A subscription is deleted by renaming its directory to "<name>~deleted-<n>" beside it and
// fsyncing the parent (one atomic rename: the commit point; a crash before it leaves the
// subscription whole), then removing the renamed tree. '~' is no name character, so a topic
// that opens never takes such a directory for a subscription: it removes what a crash left.
constexpr std::string_view kDeletedMarker = "~deleted-";

// Removes a tree that no subscription owns any more (renamed away as above, or holding no
// state at all). FileSystem has no directory removal (the logs never remove a directory), and
// none is needed here: nothing refers to the tree, and a tree half removed at a crash is
// removed again at the next start. So this goes to the disk directly.
Result<void> RemoveTree(const std::string& dir) {
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec) return Fail(ErrorCode::kIo, fmt::format("remove {}: {}", dir, ec.message()));
  return Ok();
}

}  // namespace

struct EmbeddedBroker::Queue {
  QueueOptions options;
  std::unique_ptr<Channel> channel;  // declared first: the dispatcher reads its log
  std::unique_ptr<Dispatcher> dispatcher;
  RateMeter<1> publish_rates{BusTime(), {}};  // of channel->published()
};

struct EmbeddedBroker::Topic {
  TopicOptions options;
  std::string dir;
  std::unique_ptr<Channel> channel;
  std::map<std::string, std::unique_ptr<Dispatcher>> subscriptions;
  // Subscriptions being deleted: out of `subscriptions`, waiting for their state log.
  std::map<std::string, std::unique_ptr<Dispatcher>> deleting;
  RateMeter<1> publish_rates{BusTime(), {}};
  std::function<void()> stream_listener;  // SetTopicListener's
};

Result<std::unique_ptr<EmbeddedBroker>> EmbeddedBroker::Open(EmbeddedBrokerOptions options) {
  if (options.data_dir.empty()) return Fail(ErrorCode::kInvalidArgument, "bus: no data_dir");
  if (!options.post) return Fail(ErrorCode::kInvalidArgument, "bus: no post executor");
  if (!options.fs) options.fs = PosixFileSystem::Default();
  if (!options.clock) options.clock = [] { return std::chrono::system_clock::now(); };
  if (auto r = options.fs->CreateDirs(options.data_dir); !r) return tl::unexpected(r.error());
  return std::unique_ptr<EmbeddedBroker>(new EmbeddedBroker(std::move(options)));
}

EmbeddedBroker::EmbeddedBroker(EmbeddedBrokerOptions options)
    : options_(std::move(options)),
      rng_(std::make_shared<std::mt19937_64>(std::random_device{}())),
      alive_(std::make_shared<EmbeddedBroker*>(this)) {}

EmbeddedBroker::~EmbeddedBroker() { *alive_ = nullptr; }

namespace {

LogOptions MakeLogOptions(const EmbeddedBrokerOptions& b, std::string dir) {
  LogOptions o;
  o.dir = std::move(dir);
  o.durability = b.durability;
  o.sync_interval = b.sync_interval;
  if (b.on_sync_round) {
    std::string label = o.dir.substr(std::min(o.dir.size(), b.data_dir.size()));
    while (!label.empty() && label.front() == '/') label.erase(0, 1);
    // Runs on the log's sync thread: hop to the bus thread.
    o.on_sync_round = [observer = b.on_sync_round, post = b.post,
                       label](const SyncRoundInfo& round) {
      post([observer, label, round] { observer(label, round); });
    };
  }
  o.segment_bytes = b.segment_bytes;
  o.clock_us = [clock = b.clock] {
    return std::chrono::duration_cast<std::chrono::microseconds>(clock().time_since_epoch())
        .count();
  };
  return o;
}

// What the log's retention deletes for a queue's or topic's storage options: segments over
// max_age, the oldest ones while over max_bytes, and consumed ones ("keep until consumed").
RetentionPolicy RetentionOf(const StorageOptions& storage) {
  RetentionPolicy r;
  r.max_age = std::chrono::duration_cast<std::chrono::microseconds>(storage.max_age);
  r.max_bytes = storage.max_bytes;
  r.delete_consumed = true;
  return r;
}

SubscriptionOptions AsSubscription(const DeliveryOptions& delivery) {
  SubscriptionOptions o;
  o.delivery = delivery;
  o.from_beginning = true;
  return o;
}

}  // namespace

Result<void> EmbeddedBroker::CreateQueue(const std::string& name, const QueueOptions& options) {
  if (auto r = CheckName("queue", name); !r) return r;
  if (auto it = queues_.find(name); it != queues_.end()) {
    it->second->options = options;
    it->second->channel->set_storage(options.storage);
    return it->second->dispatcher->UpdateOptions(AsSubscription(options.delivery));
  }
  const std::string dir = JoinPath(JoinPath(options_.data_dir, "queues"), name);
  auto queue = std::make_unique<Queue>();
  queue->options = options;
  queue->publish_rates = RateMeter<1>(options_.clock(), {0});
  auto channel =
      Channel::Open(options_.fs, MakeLogOptions(options_, JoinPath(dir, "messages")),
                    options.storage, {options_.clock, options_.post, rng_, options_.dedupe_window});
  if (!channel) return tl::unexpected(channel.error());
  queue->channel = std::move(*channel);
  auto state = DurableLog::Open(options_.fs, MakeLogOptions(options_, JoinPath(dir, "state")),
                                options_.post);
  if (!state) return tl::unexpected(state.error());
  auto dispatcher =
      Dispatcher::Open(queue->channel->log(), std::move(*state),
                       {options_.clock, options_.post, rng_, options_.state_checkpoint_bytes},
                       AsSubscription(options.delivery), true);
  if (!dispatcher) return tl::unexpected(dispatcher.error());
  queue->dispatcher = std::move(*dispatcher);
  Dispatcher* d = queue->dispatcher.get();
  queue->channel->log().SetAdvanceHook([d] { d->OnSourceAdvanced(); });
  queues_.emplace(name, std::move(queue));
  return Ok();
}

Result<void> EmbeddedBroker::CreateTopic(const std::string& name, const TopicOptions& options) {
  if (auto r = CheckName("topic", name); !r) return r;
  if (auto it = topics_.find(name); it != topics_.end()) {
    it->second->options = options;
    it->second->channel->set_storage(options.storage);
    return Ok();
  }
  auto topic = std::make_unique<Topic>();
  topic->options = options;
  topic->publish_rates = RateMeter<1>(options_.clock(), {0});
  topic->dir = JoinPath(JoinPath(options_.data_dir, "topics"), name);
  auto channel =
      Channel::Open(options_.fs, MakeLogOptions(options_, JoinPath(topic->dir, "messages")),
                    options.storage, {options_.clock, options_.post, rng_, options_.dedupe_window});
  if (!channel) return tl::unexpected(channel.error());
  topic->channel = std::move(*channel);
  // Subscriptions persist: reopen every one found on disk with its recorded options.
  const std::string subs_dir = JoinPath(topic->dir, "subscriptions");
  if (auto r = options_.fs->CreateDirs(subs_dir); !r) return r;
  auto names = options_.fs->List(subs_dir);
  if (!names) return tl::unexpected(names.error());
  std::sort(names->begin(), names->end());
  for (const std::string& sub : *names) {
    const std::string sub_dir = JoinPath(subs_dir, sub);
    if (sub.find(kDeletedMarker) != std::string::npos) {
      // Deleted (the rename was the commit point); a crash came before it was removed.
      if (auto r = RemoveTree(sub_dir); !r) spdlog::warn("bus: {}", r.error().message());
      continue;
    }
    if (!CheckName("subscription", sub)) continue;
    auto dispatcher = OpenSubscription(*topic, sub, nullptr);
    if (!dispatcher) return tl::unexpected(dispatcher.error());
    if (!*dispatcher) {
      spdlog::warn("bus: subscription {}/{} has no state: a crash cut its creation short; removed",
                   name, sub);
      if (auto r = RemoveTree(sub_dir); !r) spdlog::warn("bus: {}", r.error().message());
      continue;
    }
    topic->subscriptions.emplace(sub, std::move(*dispatcher));
  }
  Topic* t = topic.get();
  topic->channel->log().SetAdvanceHook([t] {
    for (auto& [sub_name, d] : t->subscriptions) d->OnSourceAdvanced();
    if (t->stream_listener) t->stream_listener();  // (the hook runs from the log's posted pump)
  });
  topics_.emplace(name, std::move(topic));
  return Ok();
}

Result<std::unique_ptr<Dispatcher>> EmbeddedBroker::OpenSubscription(
    Topic& topic, const std::string& name, const SubscriptionOptions* options) {
  const std::string dir = JoinPath(JoinPath(topic.dir, "subscriptions"), name);
  auto state = DurableLog::Open(options_.fs, MakeLogOptions(options_, JoinPath(dir, "state")),
                                options_.post);
  if (!state) return tl::unexpected(state.error());
  // Its first records (options, start) were never written: nothing to recover. (A subscription
  // always has them; checkpoints delete older segments only after writing newer ones.)
  if (options == nullptr && (*state)->log().last_sequence() == 0) {
    return std::unique_ptr<Dispatcher>();
  }
  std::optional<SubscriptionOptions> declared;
  if (options != nullptr) declared = *options;
  return Dispatcher::Open(topic.channel->log(), std::move(*state),
                          {options_.clock, options_.post, rng_, options_.state_checkpoint_bytes},
                          std::move(declared), options != nullptr && options->from_beginning);
}

Result<void> EmbeddedBroker::CreateSubscription(const std::string& topic, const std::string& name,
                                                const SubscriptionOptions& options) {
  if (auto r = CheckName("subscription", name); !r) return r;
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "no topic " + topic);
  auto& subs = it->second->subscriptions;
  if (auto existing = subs.find(name); existing != subs.end()) {
    return existing->second->UpdateOptions(options);
  }
  if (it->second->deleting.contains(name)) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("subscription {}/{} is being deleted; create it again once the "
                            "delete is answered",
                            topic, name));
  }
  auto dispatcher = OpenSubscription(*it->second, name, &options);
  if (!dispatcher) return tl::unexpected(dispatcher.error());
  subs.emplace(name, std::move(*dispatcher));
  return Ok();
}

void EmbeddedBroker::WhenSubscriptionStored(const std::string& topic, const std::string& name,
                                            DoneCallback done) {
  auto it = topics_.find(topic);
  Dispatcher* dispatcher = nullptr;
  if (it != topics_.end()) {
    if (auto sub = it->second->subscriptions.find(name); sub != it->second->subscriptions.end()) {
      dispatcher = sub->second.get();
    }
  }
  if (dispatcher == nullptr) {
    const Error error(ErrorCode::kNotFound,
                      "no subscription " + Inbox::Subscription(topic, name).ToString());
    options_.post([done = std::move(done), error] { done(tl::unexpected(error)); });
    return;
  }
  dispatcher->WhenStateAcknowledged(std::move(done));
}

void EmbeddedBroker::DeleteSubscription(const std::string& topic, const std::string& name,
                                        DoneCallback done) {
  auto fail = [&](Error error) {
    options_.post(
        [done = std::move(done), error = std::move(error)] { done(tl::unexpected(error)); });
  };
  auto it = topics_.find(topic);
  if (it == topics_.end()) return fail(Error(ErrorCode::kNotFound, "no topic " + topic));
  Topic& t = *it->second;
  auto sub = t.subscriptions.find(name);
  if (sub == t.subscriptions.end()) {
    return fail(Error(ErrorCode::kNotFound,
                      "no subscription " + Inbox::Subscription(topic, name).ToString()));
  }
  // Unknown from here on. Settles and replays already under way still finish (and answer) on
  // its state log: wait for them, then close it.
  Dispatcher* dispatcher = sub->second.get();
  t.deleting.emplace(name, std::move(sub->second));
  t.subscriptions.erase(sub);
  dispatcher->SetReadyListener(nullptr);
  dispatcher->WhenStateAcknowledged(
      [alive = alive_, post = options_.post, topic, name, done = std::move(done)](Result<void>) {
        // Whatever the state log says (a log that failed closed is deleted all the same), not
        // from inside its pump: FinishDelete destroys the log.
        post([alive, topic, name, done] {
          if (*alive != nullptr) (*alive)->FinishDelete(topic, name, done);
        });
      });
}

void EmbeddedBroker::FinishDelete(const std::string& topic, const std::string& name,
                                  DoneCallback done) {
  Topic& t = *topics_.at(topic);
  t.deleting.erase(name);  // closes its state log (and its lock)
  const std::string subs_dir = JoinPath(t.dir, "subscriptions");
  const std::string dir = JoinPath(subs_dir, name);
  const std::string trash =
      JoinPath(subs_dir, fmt::format("{}{}{:016x}", name, kDeletedMarker, (*rng_)()));
  if (auto r = options_.fs->Rename(dir, trash); !r) {
    // Nothing changed on disk: open it again as it was.
    auto reopened = OpenSubscription(t, name, nullptr);
    const bool back = reopened && *reopened;
    if (back) t.subscriptions.emplace(name, std::move(*reopened));
    spdlog::error("bus: delete of subscription {}/{}: {}", topic, name, r.error().message());
    return done(Fail(
        r.error().code(),
        fmt::format("delete of subscription {}/{} failed, {}: {}", topic, name,
                    back ? "it stays" : "it is closed until the next start", r.error().message())));
  }
  if (auto r = options_.fs->SyncDir(subs_dir); !r) {
    // The rename may not be on disk: after a crash the subscription could come back whole.
    // Its tree stays until the next start, which removes it if the rename was kept.
    return done(Fail(ErrorCode::kIo, fmt::format("subscription {}/{} deleted, but not durably "
                                                 "(it may come back after a crash): {}",
                                                 topic, name, r.error().message())));
  }
  if (auto r = RemoveTree(trash); !r) {
    spdlog::warn("bus: {} (deleted all the same; removed at the next start)", r.error().message());
  }
  spdlog::info("bus: subscription {}/{} deleted", topic, name);
  done(Ok());
}

std::vector<std::string> EmbeddedBroker::Queues() const {
  std::vector<std::string> out;
  for (const auto& [name, q] : queues_) out.push_back(name);
  return out;
}

std::vector<std::string> EmbeddedBroker::Topics() const {
  std::vector<std::string> out;
  for (const auto& [name, t] : topics_) out.push_back(name);
  return out;
}

Result<std::vector<std::string>> EmbeddedBroker::Subscriptions(const std::string& topic) const {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "no topic " + topic);
  std::vector<std::string> out;
  for (const auto& [name, d] : it->second->subscriptions) out.push_back(name);
  return out;
}

void EmbeddedBroker::Publish(const Destination& to, Message message, PublishCallback done) {
  Channel* channel = nullptr;
  if (to.kind == Destination::Kind::kQueue) {
    if (auto it = queues_.find(to.name); it != queues_.end()) channel = it->second->channel.get();
  } else if (auto it = topics_.find(to.name); it != topics_.end()) {
    channel = it->second->channel.get();
  }
  if (channel == nullptr) {
    options_.post([done = std::move(done), name = to.name,
                   queue = to.kind == Destination::Kind::kQueue] {
      done(Fail(ErrorCode::kNotFound, fmt::format("no {} {}", queue ? "queue" : "topic", name)));
    });
    return;
  }
  channel->Publish(std::move(message), std::move(done));
}

Result<TopicRead> EmbeddedBroker::ReadTopic(const std::string& topic, std::uint64_t after,
                                            std::size_t max_events, std::size_t max_bytes) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "no topic " + topic);
  const Log& log = it->second->channel->log().log();
  TopicRead out;
  out.last = log.acknowledged_sequence();
  out.first = std::max<std::uint64_t>(log.first_sequence(), 1);
  std::uint64_t next = std::max(after + 1, out.first);
  std::size_t bytes = 0;
  while (next <= out.last && out.events.size() < max_events &&
         (out.events.empty() || bytes < max_bytes)) {
    const std::size_t want = std::min<std::uint64_t>(
        {static_cast<std::uint64_t>(max_events - out.events.size()), out.last - next + 1, 256});
    auto records = log.Read(next, want);
    if (!records) return tl::unexpected(records.error());
    if (records->empty()) break;
    for (LogRecord& record : *records) {
      if (record.sequence > out.last) break;
      next = record.sequence + 1;
      auto message = DecodeMessage(record.payload);
      if (!message) continue;  // (the dispatcher logs and skips these too)
      bytes += message->data.size() + 256;
      out.events.push_back(TopicEvent{record.sequence, std::move(*message)});
      if (out.events.size() >= max_events || bytes >= max_bytes) break;
    }
  }
  return out;
}

Result<void> EmbeddedBroker::SetTopicListener(const std::string& topic,
                                              std::function<void()> listener) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "no topic " + topic);
  it->second->stream_listener = std::move(listener);
  return Ok();
}

Result<Dispatcher*> EmbeddedBroker::FindInbox(const Inbox& inbox) const {
  if (inbox.is_queue()) {
    auto it = queues_.find(inbox.name);
    if (it == queues_.end()) return Fail(ErrorCode::kNotFound, "no queue " + inbox.name);
    return it->second->dispatcher.get();
  }
  auto it = topics_.find(inbox.topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "no topic " + inbox.topic);
  auto sub = it->second->subscriptions.find(inbox.name);
  if (sub == it->second->subscriptions.end()) {
    return Fail(ErrorCode::kNotFound, "no subscription " + inbox.ToString());
  }
  return sub->second.get();
}

void EmbeddedBroker::Receive(const Inbox& from, std::size_t max, ReceiveCallback done) {
  // The deliveries are taken (and their leases start) now; only the answer is posted.
  auto d = FindInbox(from);
  Result<std::vector<Delivery>> got =
      d ? (*d)->Receive(max) : Result<std::vector<Delivery>>(tl::unexpected(d.error()));
  options_.post([done = std::move(done), got = std::move(got)]() mutable { done(std::move(got)); });
}

void EmbeddedBroker::Ack(const Inbox& inbox, std::vector<std::string> receipts,
                         SettleCallback done) {
  auto d = FindInbox(inbox);
  if (!d) {
    options_.post([done = std::move(done), e = d.error()] { done(tl::unexpected(e)); });
    return;
  }
  (*d)->Ack(receipts, std::move(done));
}

void EmbeddedBroker::Nack(const Inbox& inbox, std::vector<std::string> receipts,
                          std::optional<BusDuration> delay, SettleCallback done) {
  auto d = FindInbox(inbox);
  if (!d) {
    options_.post([done = std::move(done), e = d.error()] { done(tl::unexpected(e)); });
    return;
  }
  (*d)->Nack(receipts, delay, std::move(done));
}

Result<std::vector<SettleOutcome>> EmbeddedBroker::Extend(const Inbox& inbox,
                                                          const std::vector<std::string>& receipts,
                                                          BusDuration extension) {
  auto d = FindInbox(inbox);
  if (!d) return tl::unexpected(d.error());
  return (*d)->Extend(receipts, extension);
}

Result<std::vector<DeadLetter>> EmbeddedBroker::DeadLetters(const Inbox& inbox, std::size_t max,
                                                            std::uint64_t after) {
  auto d = FindInbox(inbox);
  if (!d) return tl::unexpected(d.error());
  return (*d)->DeadLetters(max, after);
}

void EmbeddedBroker::ReplayDeadLetters(const Inbox& inbox, std::vector<std::string> ids,
                                       ReplayCallback done) {
  auto d = FindInbox(inbox);
  if (!d) {
    options_.post([done = std::move(done), e = d.error()] { done(tl::unexpected(e)); });
    return;
  }
  (*d)->ReplayDeadLetters(ids, std::move(done));
}

Result<void> EmbeddedBroker::ReplaySubscription(const std::string& topic, const std::string& name,
                                                std::uint64_t sequence) {
  auto d = FindInbox(Inbox::Subscription(topic, name));
  if (!d) return tl::unexpected(d.error());
  return (*d)->Reset(sequence);
}

Result<void> EmbeddedBroker::ReplaySubscriptionFrom(const std::string& topic,
                                                    const std::string& name, BusTime time) {
  auto d = FindInbox(Inbox::Subscription(topic, name));
  if (!d) return tl::unexpected(d.error());
  auto sequence = FindFirstAtOrAfter(topics_.at(topic)->channel->log().log(), time);
  if (!sequence) return tl::unexpected(sequence.error());
  return (*d)->Reset(*sequence);
}

Result<void> EmbeddedBroker::SetReadyListener(const Inbox& inbox, std::function<void()> listener) {
  auto d = FindInbox(inbox);
  if (!d) return tl::unexpected(d.error());
  (*d)->SetReadyListener(std::move(listener));
  return Ok();
}

std::optional<BusTime> EmbeddedBroker::NextWakeup() const {
  std::optional<BusTime> next;
  auto consider = [&](const Dispatcher& d) {
    if (auto t = d.NextWakeup(); t && (!next || *t < *next)) next = t;
  };
  for (const auto& [name, q] : queues_) consider(*q->dispatcher);
  for (const auto& [name, t] : topics_) {
    for (const auto& [sub, d] : t->subscriptions) consider(*d);
  }
  return next;
}

void EmbeddedBroker::Tick() {
  for (auto& [name, q] : queues_) q->dispatcher->Tick();
  for (auto& [name, t] : topics_) {
    for (auto& [sub, d] : t->subscriptions) d->Tick();
  }
}

void EmbeddedBroker::EnforceRetention(DoneCallback done) {
  const std::int64_t now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(options_.clock().time_since_epoch())
          .count();
  // Each log's retention runs on its own sync thread; the answers come back posted.
  struct Round {
    std::size_t remaining = 1;  // one for this call, released at the end
    Result<void> status = Ok();
    DoneCallback done;
  };
  auto round = std::make_shared<Round>();
  round->done = std::move(done);
  const auto finish_one = [round](const Result<void>& r) {
    if (!r && round->status) round->status = r;
    if (--round->remaining == 0 && round->done) round->done(round->status);
  };
  auto enforce = [&](Channel& channel, std::uint64_t protected_sequence) {
    ++round->remaining;
    channel.log().EnforceRetention(RetentionOf(channel.storage()), protected_sequence, now_us,
                                   [finish_one](Result<RetentionResult> r) {
                                     finish_one(r ? Ok() : Result<void>(tl::unexpected(r.error())));
                                   });
  };
  for (auto& [name, q] : queues_) enforce(*q->channel, q->dispatcher->ProtectedSequence());
  for (auto& [name, t] : topics_) {
    // With no subscription nobody needs the events: only age and size limits apply.
    std::uint64_t lowest = t->channel->log().log().last_sequence() + 1;
    for (auto& [sub, d] : t->subscriptions) lowest = std::min(lowest, d->ProtectedSequence());
    enforce(*t->channel, lowest);
  }
  options_.post([finish_one] { finish_one(Ok()); });
}

void EmbeddedBroker::SampleRates() {
  if (options_.on_log_stats) ForEachLog(options_.on_log_stats);
  const BusTime now = options_.clock();
  for (auto& [name, q] : queues_) {
    q->publish_rates.Sample(now, {q->channel->published()});
    q->dispatcher->SampleRates();
  }
  for (auto& [name, t] : topics_) {
    t->publish_rates.Sample(now, {t->channel->published()});
    for (auto& [sub, d] : t->subscriptions) d->SampleRates();
  }
}

namespace {

// A log's counters as the stats show them (docs/bus.md: messages_log, state_log).
StorageStats LogSection(std::string name, const LogDurabilityStats& s) {
  return {std::move(name),
          {{"appends", s.appends},
           {"fsync_batches", s.sync_rounds},
           {"fsync_records", s.synced_records},
           {"bytes", s.bytes},
           {"segments", s.segments},
           {"sync_errors", s.sync_errors},
           {"no_space_errors", s.no_space_errors},
           {"retention_dropped_unconsumed", s.retention_dropped_unconsumed}}};
}

}  // namespace

void EmbeddedBroker::ForEachLog(
    const std::function<void(const std::string&, const LogDurabilityStats&)>& fn) const {
  for (const auto& [name, q] : queues_) {
    fn("queues/" + name + "/messages", q->channel->log().Stats());
    fn("queues/" + name + "/state", q->dispatcher->state_log().Stats());
  }
  for (const auto& [name, t] : topics_) {
    fn("topics/" + name + "/messages", t->channel->log().Stats());
    for (const auto& [sub, d] : t->subscriptions) {
      fn("topics/" + name + "/subscriptions/" + sub, d->state_log().Stats());
    }
  }
}

Result<LogDurabilityStats> EmbeddedBroker::GetLogStats(const std::string& log) const {
  std::optional<LogDurabilityStats> found;
  ForEachLog([&](const std::string& path, const LogDurabilityStats& s) {
    if (path == log) found = s;
  });
  if (!found) return Fail(ErrorCode::kNotFound, "no log " + log);
  return *found;
}

Result<QueueStats> EmbeddedBroker::GetQueueStats(const std::string& queue) const {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return Fail(ErrorCode::kNotFound, "no queue " + queue);
  const Queue& q = *it->second;
  QueueStats s;
  s.inbox = q.dispatcher->Stats();
  s.inbox.published = q.channel->published();
  s.inbox.duplicates = q.channel->duplicates();
  s.inbox.rates.publish = q.publish_rates.PerSecond(options_.clock(), {s.inbox.published})[0];
  s.storage.push_back(LogSection("messages_log", q.channel->log().Stats()));
  s.storage.push_back(LogSection("state_log", q.dispatcher->state_log().Stats()));
  return s;
}

Result<TopicStats> EmbeddedBroker::GetTopicStats(const std::string& topic) const {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "no topic " + topic);
  const Topic& t = *it->second;
  TopicStats s;
  s.published = t.channel->published();
  s.duplicates = t.channel->duplicates();
  s.publish_rate = t.publish_rates.PerSecond(options_.clock(), {s.published})[0];
  s.storage.push_back(LogSection("messages_log", t.channel->log().Stats()));
  for (const auto& [name, d] : t.subscriptions) {
    s.subscriptions.push_back(
        {name, d->Stats(), {LogSection("state_log", d->state_log().Stats())}});
  }
  return s;
}

Result<SubscriptionStats> EmbeddedBroker::GetSubscriptionStats(const std::string& topic,
                                                               const std::string& name) const {
  auto d = FindInbox(Inbox::Subscription(topic, name));
  if (!d) return tl::unexpected(d.error());
  return SubscriptionStats{
      name, (*d)->Stats(), {LogSection("state_log", (*d)->state_log().Stats())}};
}

Result<SubscriptionOptions> EmbeddedBroker::GetSubscriptionOptions(const std::string& topic,
                                                                   const std::string& name) const {
  auto d = FindInbox(Inbox::Subscription(topic, name));
  if (!d) return tl::unexpected(d.error());
  return (*d)->options();
}

}  // namespace ferry::bus
