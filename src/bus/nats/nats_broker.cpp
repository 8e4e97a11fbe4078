#include "bus/nats/nats_broker.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "bus/engine/message_codec.hpp"
#include "bus/engine/rate_meter.hpp"
#include "bus/engine/state_record.hpp"
#include "bus/nats/fetch_worker.hpp"
#include "bus/nats/key_order.hpp"
#include "bus/nats/nats_client.hpp"
#include "bus/nats/nats_names.hpp"

namespace ferry::bus::nats {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// How long Ferry keeps retrying a publish whose PubAck did not come (a lost ack, a leader
// election): always with the same Nats-Msg-Id, so a retry of a stored message is a duplicate.
constexpr auto kPublishRetryFor = std::chrono::seconds(20);
constexpr auto kPublishRetryWait = milliseconds(250);
constexpr std::int64_t kPublishAckWaitMs = 5000;
constexpr std::int64_t kApiWaitMs = 5000;
// The longest a no-wait pull may wait on the server (see Fetch).
constexpr auto kFetchExpires = milliseconds(100);
// How often long polls look for messages published through other nodes.
constexpr auto kForeignPublishPoll = milliseconds(500);
// A consumer's outstanding unacknowledged deliveries (JetStream's MaxAckPending): deliveries in
// flight and messages held behind their key's head together.
constexpr std::int64_t kMaxAckPending = 20000;
// How late a key's head that went back to JetStream (a nack, a deferral, a lease that ran out)
// may be redelivered before a fetch that drained the consumer without it lets the key go on: it
// went to another Ferry node (see KeyOrder). JetStream moves a due message to its redelivery
// queue on a timer, a moment after it is due.
constexpr auto kRedeliveryGrace = std::chrono::seconds(2);

// Dead letters: the headers beside the original stored bytes.
constexpr const char* kReasonHeader = "Ferry-Reason";
constexpr const char* kAttemptsHeader = "Ferry-Attempts";
constexpr const char* kSequenceHeader = "Ferry-Sequence";
constexpr const char* kDeadAtHeader = "Ferry-Dead-At";  // microseconds since the epoch
constexpr const char* kMsgIdHeader = "Nats-Msg-Id";

std::int64_t Nanos(Duration d) { return duration_cast<nanoseconds>(d).count(); }
std::int64_t Micros(BusTime t) {
  return duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto value = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int high = value(text[i]);
    const int low = value(text[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
  }
  return out;
}

std::string StatusText(natsStatus s, int error_code = 0, const std::string& text = {}) {
  std::string out = natsStatus_GetText(s);
  if (error_code != 0) out += fmt::format(" (JetStream error {})", error_code);
  if (!text.empty()) out += ": " + text;
  return out;
}

tl::unexpected<Error> ApiError(std::string_view what, natsStatus s, jsErrCode code) {
  return Fail(ErrorCode::kUnavailable,
              fmt::format("NATS: {}: {}", what, StatusText(s, static_cast<int>(code))));
}

bool FieldMatches(const std::string& pattern, const std::string& value) {
  if (pattern.empty()) return true;
  if (pattern.back() == '*') {
    return value.size() >= pattern.size() - 1 &&
           value.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  return pattern == value;
}

std::optional<std::string> Header(natsMsg* msg, const char* key) {
  const char* value = nullptr;
  if (natsMsgHeader_Get(msg, key, &value) != NATS_OK || value == nullptr) return std::nullopt;
  return std::string(value);
}

// What a queue or topic publishes to.
struct Channel {
  std::string stream;
  std::string subject;  // where publishes go
  StorageOptions storage;
  std::uint64_t published = 0;
  std::uint64_t duplicates = 0;
  RateMeter<1> publish_rates{BusTime(), {}};  // of published
};

struct PullSub {
  natsSubscription* sub = nullptr;
  ~PullSub() {
    if (sub != nullptr) natsSubscription_Destroy(sub);
  }
};

// A queue or one subscription: its durable consumer and what Ferry keeps beside it.
struct InboxState {
  Inbox inbox;
  std::uint32_t id = 0;  // in receipts
  std::string stream;
  std::string consumer;
  std::string filter_subject;
  std::string replay_subject;   // where this inbox's replayed dead letters go
  SubscriptionOptions options;  // delivery (queues: only that), filter, push
  std::shared_ptr<PullSub> pull;
  std::function<void()> listener;
  std::map<std::uint64_t, std::uint32_t> deferrals;  // sequence -> NAKs for deliver_at
  std::map<std::uint64_t, BusTime> waiting;          // NAKed with a delay (deliver_at, nack): until
  // Per-key order: fetched messages held behind their key's head (in flight to this node for
  // JetStream, their AckWait restarted by InProgress every third of a lease), and those of them
  // that are their key's head now and go out with the next Receive.
  KeyOrder order;
  std::map<std::uint64_t, std::shared_ptr<natsMsg>> held;  // by stream sequence
  std::set<std::uint64_t> released;
  // Nacked deliveries are held too, until their backoff ends, and delivered again by this node
  // (see Redeliver): when, and how many times each was.
  std::multimap<BusTime, std::uint64_t> redeliver_at;
  std::set<std::uint64_t> nacked;  // held for a redelivery, not yet due
  std::map<std::uint64_t, std::uint32_t> local_redeliveries;
  BusTime next_refresh{};  // the next InProgress round over `held`
  InboxStats stats;
  // Of stats.delivered, redelivered, acked, nacked, dead_lettered (as the embedded dispatcher).
  RateMeter<5> rates{BusTime(), {}};
};

struct InFlight {
  std::shared_ptr<InboxState> inbox;
  std::shared_ptr<natsMsg> msg;
  std::string key;  // partitionkey; empty: none
  std::uint64_t sequence = 0;
  std::uint32_t attempt = 0;
  BusTime lease_expires{};
};

struct PendingPublish {
  std::string subject;
  std::string msg_id;
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Nats-Msg-Id
  BusTime give_up{};
  std::function<void(Result<PubAckResult>)> done;
};

class NatsBroker final : public Broker {
 public:
  NatsBroker(NatsBrokerOptions options, std::shared_ptr<NatsShared> shared)
      : options_(std::move(options)), shared_(std::move(shared)), rng_(std::random_device{}()) {
    if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
  }

  ~NatsBroker() override {
    shared_->alive = false;
    shared_->on_pub_ack = nullptr;
    worker_.reset();  // joins: no fetch runs past here
    receipts_.clear();
    inboxes_.clear();
    if (js_ != nullptr) jsCtx_Destroy(js_);
    if (nc_ != nullptr) {
      natsConnection_Close(nc_);
      natsConnection_Destroy(nc_);
    }
    if (opts_ != nullptr) natsOptions_Destroy(opts_);
  }

  Result<void> Connect() {
    const auto& n = options_.nats;
    if (natsOptions_Create(&opts_) != NATS_OK) return Fail(ErrorCode::kInternal, "NATS options");
    std::vector<const char*> servers;
    for (const auto& s : n.servers) servers.push_back(s.c_str());
    natsOptions_SetServers(opts_, servers.data(), static_cast<int>(servers.size()));
    natsOptions_SetTimeout(opts_, duration_cast<milliseconds>(n.connect_timeout).count());
    natsOptions_SetName(opts_, "ferry-bus");
    natsOptions_SetAllowReconnect(opts_, true);
    natsOptions_SetMaxReconnect(opts_, -1);  // forever: the cluster comes back
    natsOptions_SetReconnectWait(opts_, 250);
    // Publishes, acks and pulls go out at once: libnats' flusher otherwise sleeps 1 ms to batch
    // writes, which a sync publisher waits for on every publish (docs/benchmarks.md).
    natsOptions_SetSendAsap(opts_, true);
    natsOptions_SetDisconnectedCB(opts_, OnDisconnected, shared_.get());
    natsOptions_SetReconnectedCB(opts_, OnReconnected, shared_.get());
    natsOptions_SetClosedCB(opts_, OnClosed, shared_.get());
    if (!n.credentials.empty()) {
      if (auto s = natsOptions_SetUserCredentialsFromFiles(opts_, n.credentials.c_str(), nullptr);
          s != NATS_OK) {
        return Fail(ErrorCode::kInvalidArgument,
                    fmt::format("bus.nats.credentials: {}", StatusText(s)));
      }
    }
    if (auto s = natsConnection_Connect(&nc_, opts_); s != NATS_OK) {
      nc_ = nullptr;
      return Fail(ErrorCode::kUnavailable, fmt::format("NATS: cannot connect to {}: {}",
                                                       fmt::join(n.servers, ", "), StatusText(s)));
    }
    shared_->connected = true;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = kApiWaitMs;
    jo.PublishAsync.AckHandler = OnPubAck;
    jo.PublishAsync.AckHandlerClosure = shared_.get();
    jo.PublishAsync.MaxPending = 65536;
    if (auto s = natsConnection_JetStream(&js_, nc_, &jo); s != NATS_OK) {
      return Fail(ErrorCode::kUnavailable, fmt::format("NATS JetStream: {}", StatusText(s)));
    }
    shared_->on_pub_ack = [this](std::uint64_t token, PubAckResult r) {
      OnPublished(token, std::move(r));
    };
    worker_ = std::make_unique<FetchWorker>();
    return EnsureStream(std::string(kDeadLetterStream), {std::string(kDeadLetterSubjects)},
                        js_LimitsPolicy, StorageOptions{.max_message_bytes = 64ull << 20},
                        /*allow_direct=*/true);
  }

  // --- declarations

  Result<void> CreateQueue(const std::string& name, const QueueOptions& options) override {
    Channel channel{QueueStream(name), QueueSubject(name), options.storage};
    if (auto r = EnsureStream(channel.stream, {channel.subject}, js_WorkQueuePolicy,
                              options.storage, false);
        !r) {
      return r;
    }
    channel.publish_rates = RateMeter<1>(options_.clock(), {0});
    auto [it, added] = queues_.try_emplace(name, std::move(channel));
    if (!added) it->second.storage = options.storage;
    SubscriptionOptions sub;
    sub.delivery = options.delivery;
    sub.from_beginning = true;
    return EnsureInbox(Inbox::Queue(name), it->second.stream, std::string(kQueueConsumer),
                       it->second.subject, it->second.subject, sub);
  }

  Result<void> CreateTopic(const std::string& name, const TopicOptions& options) override {
    Channel channel{TopicStream(name), TopicEventSubject(name), options.storage};
    if (auto r = EnsureStream(channel.stream, {TopicSubjects(name)}, js_LimitsPolicy,
                              options.storage, false);
        !r) {
      return r;
    }
    channel.publish_rates = RateMeter<1>(options_.clock(), {0});
    auto [it, added] = topics_.try_emplace(name, std::move(channel));
    if (!added) {
      it->second.storage = options.storage;
      return Ok();
    }
    // Subscriptions made by PUT live on as durable consumers: take them up again, with the
    // options stored in their description.
    jsConsumerNamesList* names = nullptr;
    jsErrCode code{};
    if (auto s = js_ConsumerNames(&names, js_, it->second.stream.c_str(), nullptr, &code);
        s == NATS_OK && names != nullptr) {
      for (int i = 0; i < names->Count; ++i) {
        auto sub_name = UnescapeName(names->List[i]);
        if (!sub_name) continue;
        jsConsumerInfo* info = nullptr;
        if (js_GetConsumerInfo(&info, js_, it->second.stream.c_str(), names->List[i], nullptr,
                               &code) != NATS_OK) {
          continue;
        }
        SubscriptionOptions sub;
        if (info->Config != nullptr && info->Config->Description != nullptr) {
          if (auto bytes = Unhex(info->Config->Description)) {
            if (auto decoded = DecodeSubscriptionOptions(*bytes)) sub = *decoded;
          }
        }
        jsConsumerInfo_Destroy(info);
        (void)OpenSubscription(name, *sub_name, sub, /*create=*/false);
      }
      jsConsumerNamesList_Destroy(names);
    } else if (s != NATS_OK && s != NATS_NOT_FOUND) {
      return ApiError("list consumers", s, code);
    }
    return Ok();
  }

  Result<void> CreateSubscription(const std::string& topic, const std::string& name,
                                  const SubscriptionOptions& options) override {
    if (!topics_.contains(topic)) return Fail(ErrorCode::kNotFound, "unknown topic " + topic);
    return OpenSubscription(topic, name, options, /*create=*/true);
  }

  void DeleteSubscription(const std::string& topic, const std::string& name,
                          DoneCallback done) override {
    auto it = inboxes_.find(Inbox::Subscription(topic, name).ToString());
    if (it == inboxes_.end()) {
      return Post([done = std::move(done), topic, name] {
        done(Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name)));
      });
    }
    auto state = it->second;
    inboxes_.erase(it);
    DropReceipts(*state);
    jsErrCode code{};
    auto s = js_DeleteConsumer(js_, state->stream.c_str(), state->consumer.c_str(), nullptr, &code);
    Result<void> result = Ok();
    if (s == NATS_OK || code == JSConsumerNotFoundErr) {
      // Its dead letters go with it (a new subscription of the name starts empty).
      jsOptions po;
      jsOptions_Init(&po);
      const std::string subject = DeadLetterSubject(topic, name);
      po.Stream.Purge.Subject = subject.c_str();
      s = js_PurgeStream(js_, std::string(kDeadLetterStream).c_str(), &po, &code);
      if (s != NATS_OK) result = ApiError("purge dead letters", s, code);
    } else {
      result = ApiError("delete consumer", s, code);
    }
    Post([done = std::move(done), result = std::move(result)] { done(result); });
  }

  void WhenSubscriptionStored(const std::string& topic, const std::string& name,
                              DoneCallback done) override {
    // The consumer was created (replicated) before CreateSubscription returned.
    const bool known = inboxes_.contains(Inbox::Subscription(topic, name).ToString());
    Post([done = std::move(done), known, topic, name] {
      if (!known) {
        return done(
            Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name)));
      }
      done(Ok());
    });
  }

  std::vector<std::string> Queues() const override { return Keys(queues_); }
  std::vector<std::string> Topics() const override { return Keys(topics_); }
  Result<std::vector<std::string>> Subscriptions(const std::string& topic) const override {
    if (!topics_.contains(topic)) return Fail(ErrorCode::kNotFound, "unknown topic " + topic);
    std::vector<std::string> out;
    for (const auto& [key, state] : inboxes_) {
      if (state->inbox.topic == topic) out.push_back(state->inbox.name);
    }
    return out;
  }

  // --- publishing

  void Publish(const Destination& to, Message message, PublishCallback done) override {
    auto& channels = to.kind == Destination::Kind::kQueue ? queues_ : topics_;
    auto it = channels.find(to.name);
    if (it == channels.end()) {
      return Post([done = std::move(done), name = to.name] {
        done(Fail(ErrorCode::kNotFound, "unknown queue or topic " + name));
      });
    }
    Channel& channel = it->second;
    if (message.id.empty()) message.id = NewId();
    message.published_at = options_.clock();
    std::string payload = EncodeMessage(message);
    if (payload.size() > channel.storage.max_message_bytes) {
      return Post([done = std::move(done), size = payload.size(),
                   max = channel.storage.max_message_bytes] {
        done(Fail(ErrorCode::kResourceExhausted,
                  fmt::format("message of {} bytes is over max_message_bytes ({})", size, max)));
      });
    }
    PendingPublish p;
    p.subject = channel.subject;
    p.msg_id = message.id;
    p.payload = std::move(payload);
    p.done = [this, done = std::move(done), id = message.id, kind = to.kind,
              name = to.name](Result<PubAckResult> r) {
      if (!r) return done(tl::unexpected(r.error()));
      CountPublish(kind, name, r->duplicate);
      done(PublishResult{.id = id, .sequence = r->sequence, .duplicate = r->duplicate});
      if (!r->duplicate) NotifyDestination(kind, name);
    };
    StartPublish(std::move(p));
  }

  // --- consuming

  void Receive(const Inbox& from, std::size_t max, ReceiveCallback done) override {
    auto state = Find(from);
    if (!state) {
      return Post([done = std::move(done), name = from.ToString()] {
        done(Fail(ErrorCode::kNotFound, "unknown queue or subscription " + name));
      });
    }
    max = std::max<std::size_t>(max, 1);
    std::vector<Delivery> got;
    TakeReleased(state, max, got);
    if (got.size() >= max) {
      return Post(
          [done = std::move(done), got = std::move(got)]() mutable { done(std::move(got)); });
    }
    Fetch(state, max, std::move(got), std::move(done));
  }

  void Ack(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done) override {
    Settle(inbox, std::move(receipts), std::move(done), [this](InFlight& f) {
      natsMsg_Ack(f.msg.get(), nullptr);
      ++f.inbox->stats.acked;
      Forget(*f.inbox, f.sequence);
      Release(f.inbox, f.key, f.sequence);
    });
  }

  void Nack(const Inbox& inbox, std::vector<std::string> receipts, std::optional<BusDuration> delay,
            SettleCallback done) override {
    Settle(inbox, std::move(receipts), std::move(done), [this, delay](InFlight& f) {
      ++f.inbox->stats.nacked;
      const auto& d = f.inbox->options.delivery;
      if (d.max_deliveries != 0 && f.attempt >= d.max_deliveries) {
        return Bury(f.inbox, f.msg, f.key, f.sequence, f.attempt,
                    fmt::format("max deliveries ({}) exceeded: nacked {} times", d.max_deliveries,
                                f.attempt));
      }
      const BusDuration wait = delay ? *delay : Backoff(d, f.attempt);
      Redeliver(f.inbox, f.sequence, std::move(f.msg), options_.clock() + wait);
    });
  }

  Result<std::vector<SettleOutcome>> Extend(const Inbox& inbox,
                                            const std::vector<std::string>& receipts,
                                            BusDuration extension) override {
    // JetStream's "in progress" restarts AckWait (the lease) from now. Ferry holds the lease to
    // now + extension and, while that is further than AckWait, says "in progress" again every
    // half lease (Tick).
    std::vector<SettleOutcome> out;
    const BusTime now = options_.clock();
    for (const auto& receipt : receipts) {
      InFlight* f = nullptr;
      const SettleOutcome outcome = Lookup(inbox, receipt, now, &f);
      if (outcome == SettleOutcome::kOk) {
        natsMsg_InProgress(f->msg.get(), nullptr);
        leases_.erase({f->lease_expires, receipt});
        const BusDuration lease = f->inbox->options.delivery.lease;
        f->lease_expires = now + std::max(extension, lease);
        leases_.insert({f->lease_expires, receipt});
        if (extension > lease) keepalives_.emplace(now + lease / 2, receipt);
      }
      out.push_back(outcome);
    }
    return out;
  }

  // --- dead letters

  Result<std::vector<DeadLetter>> DeadLetters(const Inbox& inbox, std::size_t max,
                                              std::uint64_t after) override {
    auto state = Find(inbox);
    if (!state) return Fail(ErrorCode::kNotFound, "unknown queue or subscription");
    std::vector<DeadLetter> out;
    auto r = ScanDeadLetters(*state, [&](std::uint64_t, DeadLetter letter) {
      if (letter.sequence > after) out.push_back(std::move(letter));
      return out.size() < max;
    });
    if (!r) return tl::unexpected(r.error());
    return out;
  }

  void ReplayDeadLetters(const Inbox& inbox, std::vector<std::string> ids,
                         ReplayCallback done) override {
    auto state = Find(inbox);
    if (!state) {
      return Post([done = std::move(done)] {
        done(Fail(ErrorCode::kNotFound, "unknown queue or subscription"));
      });
    }
    std::unordered_set<std::string> wanted(ids.begin(), ids.end());
    std::vector<std::pair<std::uint64_t, DeadLetter>> chosen;
    auto r = ScanDeadLetters(*state, [&](std::uint64_t dlq_seq, DeadLetter letter) {
      if (wanted.empty() || wanted.contains(letter.message.id)) {
        chosen.emplace_back(dlq_seq, std::move(letter));
      }
      return true;
    });
    if (!r) return Post([done = std::move(done), e = r.error()] { done(tl::unexpected(e)); });
    if (chosen.empty()) return Post([done = std::move(done)] { done(std::size_t{0}); });
    struct Progress {
      std::size_t left = 0;
      std::size_t replayed = 0;
      std::optional<Error> error;
      ReplayCallback done;
    };
    auto progress = std::make_shared<Progress>();
    progress->left = chosen.size();
    progress->done = std::move(done);
    for (auto& [dlq_seq, letter] : chosen) {
      PendingPublish p;
      p.subject = state->replay_subject;
      // Its own id, so a replay is not a duplicate of the original, and a repeated replay of
      // the same dead letter (a crash before its deletion below) is.
      p.msg_id = fmt::format("replay:{}:{}", kDeadLetterStream, dlq_seq);
      p.payload = EncodeMessage(letter.message);
      p.done = [this, state, progress, dlq_seq = dlq_seq](Result<PubAckResult> r) {
        if (r) {
          jsErrCode code{};
          js_DeleteMsg(js_, std::string(kDeadLetterStream).c_str(), dlq_seq, nullptr, &code);
          ++progress->replayed;
          ++state->stats.replayed;
        } else if (!progress->error) {
          progress->error = r.error();
        }
        if (--progress->left == 0) {
          if (progress->error && progress->replayed == 0) {
            return progress->done(tl::unexpected(*progress->error));
          }
          progress->done(progress->replayed);
          Notify(state);
        }
      };
      StartPublish(std::move(p));
    }
  }

  // --- subscription replay

  Result<void> ReplaySubscription(const std::string& topic, const std::string& name,
                                  std::uint64_t sequence) override {
    return RestartSubscription(topic, name, js_DeliverByStartSequence,
                               std::max<std::uint64_t>(sequence, 1), 0);
  }

  Result<void> ReplaySubscriptionFrom(const std::string& topic, const std::string& name,
                                      BusTime time) override {
    return RestartSubscription(topic, name, js_DeliverByStartTime, 0,
                               duration_cast<nanoseconds>(time.time_since_epoch()).count());
  }

  // --- long-poll support

  Result<void> SetReadyListener(const Inbox& inbox, std::function<void()> listener) override {
    auto state = Find(inbox);
    if (!state) return Fail(ErrorCode::kNotFound, "unknown queue or subscription");
    state->listener = std::move(listener);
    return Ok();
  }

  std::optional<BusTime> NextWakeup() const override {
    std::optional<BusTime> next;
    auto consider = [&](BusTime t) {
      if (!next || t < *next) next = t;
    };
    if (!leases_.empty()) consider(leases_.begin()->first);
    if (!wakeups_.empty()) consider(wakeups_.begin()->first);
    if (!retries_.empty()) consider(retries_.begin()->first);
    if (!keepalives_.empty()) consider(keepalives_.begin()->first);
    if (!inboxes_.empty()) consider(next_poll_);
    for (const auto& [key, state] : inboxes_) {
      if (!state->held.empty()) consider(state->next_refresh);
      if (!state->redeliver_at.empty()) consider(state->redeliver_at.begin()->first);
    }
    return next;
  }

  void Tick() override {
    const BusTime now = options_.clock();
    if (now >= next_poll_) {
      // Publishes through other Ferry nodes (or straight to NATS) notify no one here: every
      // inbox's long polls try a pull this often (a spurious wake-up costs one empty fetch).
      next_poll_ = now + kForeignPublishPoll;
      for (const auto& [key, state] : inboxes_) Notify(state);
    }
    // Lost leases: JetStream redelivers after AckWait by itself; Ferry forgets the receipt (an
    // ack with it is stale) and wakes the inbox's long polls.
    while (!leases_.empty() && leases_.begin()->first <= now) {
      auto receipt = leases_.begin()->second;
      leases_.erase(leases_.begin());
      auto it = receipts_.find(receipt);
      if (it == receipts_.end()) continue;
      auto inbox = it->second.inbox;
      InFlight lost = std::move(it->second);
      ++inbox->stats.lease_expired;
      receipts_.erase(it);
      if (inbox->stats.in_flight > 0) --inbox->stats.in_flight;
      const auto max = inbox->options.delivery.max_deliveries;
      if (max != 0 && lost.attempt >= max) {
        // The last delivery failed: dead-letter it now (if JetStream redelivers it first, that
        // fetch buries it too, under the same dead-letter Nats-Msg-Id).
        Bury(inbox, lost.msg, lost.key, lost.sequence, lost.attempt,
             fmt::format("max deliveries ({}) exceeded after lease expiry", max));
        continue;
      }
      // JetStream's AckWait ran from the server's delivery, a moment before Ferry's lease: the
      // message is deliverable by now or very soon, and still its key's head.
      if (!lost.key.empty()) inbox->order.Waiting(lost.key, lost.sequence, now);
      WakeAt(now + milliseconds(50), inbox);
    }
    while (!wakeups_.empty() && wakeups_.begin()->first <= now) {
      auto inbox = wakeups_.begin()->second.lock();
      wakeups_.erase(wakeups_.begin());
      if (inbox) Notify(inbox);
    }
    while (!keepalives_.empty() && keepalives_.begin()->first <= now) {
      auto receipt = keepalives_.begin()->second;
      keepalives_.erase(keepalives_.begin());
      auto it = receipts_.find(receipt);
      if (it == receipts_.end() || it->second.lease_expires <= now) continue;
      // An extension past AckWait: tell JetStream "in progress" again before AckWait ends.
      natsMsg_InProgress(it->second.msg.get(), nullptr);
      const BusDuration half = it->second.inbox->options.delivery.lease / 2;
      if (it->second.lease_expires - now > half) keepalives_.emplace(now + half, receipt);
    }
    while (!retries_.empty() && retries_.begin()->first <= now) {
      auto token = retries_.begin()->second;
      retries_.erase(retries_.begin());
      SendPublish(token);
    }
    // Nacked deliveries whose backoff ended go out with the next Receive.
    for (const auto& [key, state] : inboxes_) {
      bool due = false;
      while (!state->redeliver_at.empty() && state->redeliver_at.begin()->first <= now) {
        const std::uint64_t seq = state->redeliver_at.begin()->second;
        state->redeliver_at.erase(state->redeliver_at.begin());
        if (state->nacked.erase(seq) != 0 && state->held.contains(seq)) {
          state->released.insert(seq);
          due = true;
        }
      }
      if (due) Notify(state);
    }
    // Held messages stay in flight to this node: each InProgress restarts their AckWait.
    for (const auto& [key, state] : inboxes_) {
      if (state->held.empty() || state->next_refresh > now) continue;
      for (const auto& [seq, msg] : state->held) natsMsg_InProgress(msg.get(), nullptr);
      state->next_refresh = now + RefreshInterval(*state);
    }
  }

  void EnforceRetention(DoneCallback done) override {
    // The streams' own limits (max_bytes, max_age, work-queue removal on ack) do it.
    Post([done = std::move(done)] { done(Ok()); });
  }

  void SampleRates() override {
    const BusTime now = options_.clock();
    for (auto* channels : {&queues_, &topics_}) {
      for (auto& [name, channel] : *channels)
        channel.publish_rates.Sample(now, {channel.published});
    }
    for (const auto& [key, state] : inboxes_) state->rates.Sample(now, RateCounts(*state));
  }

  // --- stats

  Result<QueueStats> GetQueueStats(const std::string& queue) const override {
    auto it = queues_.find(queue);
    if (it == queues_.end()) return Fail(ErrorCode::kNotFound, "unknown queue " + queue);
    auto state = Find(Inbox::Queue(queue));
    if (!state) return Fail(ErrorCode::kNotFound, "unknown queue " + queue);
    QueueStats out;
    out.inbox = InboxStatsOf(*state);
    out.inbox.published = it->second.published;
    out.inbox.duplicates = it->second.duplicates;
    out.inbox.rates.publish =
        it->second.publish_rates.PerSecond(options_.clock(), {it->second.published})[0];
    out.storage.push_back(StreamStats(it->second.stream));
    return out;
  }

  Result<TopicStats> GetTopicStats(const std::string& topic) const override {
    auto it = topics_.find(topic);
    if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "unknown topic " + topic);
    TopicStats out;
    out.published = it->second.published;
    out.duplicates = it->second.duplicates;
    out.publish_rate =
        it->second.publish_rates.PerSecond(options_.clock(), {it->second.published})[0];
    out.storage.push_back(StreamStats(it->second.stream));
    for (const auto& [key, state] : inboxes_) {
      if (state->inbox.topic != topic) continue;
      out.subscriptions.push_back({state->inbox.name, InboxStatsOf(*state), {}});
    }
    return out;
  }

  Result<SubscriptionStats> GetSubscriptionStats(const std::string& topic,
                                                 const std::string& name) const override {
    auto state = Find(Inbox::Subscription(topic, name));
    if (!state)
      return Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name));
    return SubscriptionStats{name, InboxStatsOf(*state), {}};
  }

  Result<SubscriptionOptions> GetSubscriptionOptions(const std::string& topic,
                                                     const std::string& name) const override {
    auto state = Find(Inbox::Subscription(topic, name));
    if (!state)
      return Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name));
    return state->options;
  }

  bool Available() const override { return shared_->connected; }

 private:
  template <typename Map>
  static std::vector<std::string> Keys(const Map& map) {
    std::vector<std::string> out;
    for (const auto& [key, value] : map) out.push_back(key);
    return out;
  }

  void Post(std::function<void()> task) {
    options_.post([shared = shared_, task = std::move(task)] {
      if (shared->alive) task();
    });
  }

  std::string NewId() {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string id(32, '0');
    for (int half = 0; half < 2; ++half) {
      std::uint64_t bits = rng_();
      for (int i = 15; i >= 0; --i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
    }
    return id;
  }

  std::shared_ptr<InboxState> Find(const Inbox& inbox) const {
    auto it = inboxes_.find(inbox.ToString());
    return it == inboxes_.end() ? nullptr : it->second;
  }

  static BusDuration Backoff(const DeliveryOptions& d, std::uint32_t failures) {
    double wait = static_cast<double>(Nanos(d.backoff.initial));
    for (std::uint32_t i = 1; i < failures && wait < static_cast<double>(Nanos(d.backoff.max));
         ++i) {
      wait *= d.backoff.multiplier;
    }
    return std::min<BusDuration>(d.backoff.max, BusDuration(static_cast<std::int64_t>(wait)));
  }

  // Long polls of this node learn of its own publishes here; of other nodes' from the poll
  // timer in Tick.
  void NotifyDestination(Destination::Kind kind, const std::string& name) {
    for (const auto& [key, state] : inboxes_) {
      const bool match = kind == Destination::Kind::kQueue
                             ? state->inbox.is_queue() && state->inbox.name == name
                             : state->inbox.topic == name;
      if (match) Notify(state);
    }
  }

  void Notify(const std::shared_ptr<InboxState>& state) {
    if (state->listener) Post([listener = state->listener] { listener(); });
  }

  void WakeAt(BusTime at, const std::shared_ptr<InboxState>& state) { wakeups_.emplace(at, state); }

  static RateMeter<5>::Counts RateCounts(const InboxState& state) {
    const InboxStats& s = state.stats;
    return {s.delivered, s.redelivered, s.acked, s.nacked, s.dead_lettered};
  }

  // --- per-key order (KeyOrder has the rules; here are the messages)

  // How often held messages are told "in progress": well within their AckWait (the lease).
  static BusDuration RefreshInterval(const InboxState& state) {
    return std::max<BusDuration>(state.options.delivery.lease / 3, milliseconds(10));
  }

  // Keeps a fetched message behind its key's head. Holding it, rather than NAKing it back,
  // keeps it leased to this node, so no other node takes it meanwhile, its delivery count
  // does not grow, and the key's messages go out in stream order (NAKed ones would come back
  // in the order their delays end, and each NAK counts as a delivery).
  void Hold(InboxState& state, std::uint64_t seq, std::shared_ptr<natsMsg> msg, BusTime now) {
    if (state.held.empty()) state.next_refresh = now + RefreshInterval(state);
    state.held[seq] = std::move(msg);  // a redelivery of a held one replaces it
  }

  // A nacked delivery is held by this node until `at`, then handed out again by it, rather than
  // NAKed to JetStream with the delay: nats-server before 2.10.15 can lose a redelivery it takes
  // from its redelivery queue for a pull request that has expired (nats-server#5338), leaving
  // the message unacknowledged until AckWait; Ferry's short pulls expire often. Held, it also
  // stays its key's head here and on no other node. JetStream's delivery count does not see
  // these redeliveries: Ferry adds them (local_redeliveries), until a restart of Ferry.
  void Redeliver(const std::shared_ptr<InboxState>& state, std::uint64_t seq,
                 std::shared_ptr<natsMsg> msg, BusTime at) {
    ++state->local_redeliveries[seq];
    natsMsg_InProgress(msg.get(), nullptr);  // its AckWait runs from now; Tick keeps it alive
    Hold(*state, seq, std::move(msg), options_.clock());
    state->waiting[seq] = at;
    state->nacked.insert(seq);
    state->redeliver_at.emplace(at, seq);
  }

  // Forgets what Ferry kept about a message that is settled for good.
  static void Forget(InboxState& state, std::uint64_t seq) {
    state.deferrals.erase(seq);
    state.waiting.erase(seq);
    state.local_redeliveries.erase(seq);
  }

  // `seq` of `key` is settled (acked, dead-lettered): the key's next held message goes out
  // with the next Receive.
  void Release(const std::shared_ptr<InboxState>& state, const std::string& key,
               std::uint64_t seq) {
    if (key.empty()) return;
    auto next = state->order.Settled(key, seq);
    if (next) Released(state, key, *next);
  }

  void Released(const std::shared_ptr<InboxState>& state, const std::string& key,
                std::uint64_t seq) {
    // Every message KeyOrder holds is in `held`; were one missing, its key must not wait on it.
    while (!state->held.contains(seq)) {
      auto next = state->order.Settled(key, seq);
      if (!next) return;
      seq = *next;
    }
    state->released.insert(seq);
    Notify(state);
  }

  // Hands out held messages that are their key's head now, up to `max` in all.
  void TakeReleased(const std::shared_ptr<InboxState>& state, std::size_t max,
                    std::vector<Delivery>& got) {
    const BusTime now = options_.clock();
    while (!state->released.empty() && got.size() < max) {
      const std::uint64_t seq = *state->released.begin();
      state->released.erase(state->released.begin());
      auto it = state->held.find(seq);
      if (it == state->held.end()) continue;
      auto msg = std::move(it->second);
      state->held.erase(it);
      Offer(state, std::move(msg), now, /*held=*/true, got);
    }
  }

  // Adds the stream, or updates its limits when it exists (placement and retention stay).
  Result<void> EnsureStream(const std::string& name, const std::vector<std::string>& subjects,
                            jsRetentionPolicy retention, const StorageOptions& storage,
                            bool allow_direct) {
    std::vector<const char*> subject_ptrs;
    for (const auto& s : subjects) subject_ptrs.push_back(s.c_str());
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    cfg.Name = name.c_str();
    cfg.Subjects = subject_ptrs.data();
    cfg.SubjectsLen = static_cast<int>(subject_ptrs.size());
    cfg.Retention = retention;
    cfg.Storage = js_FileStorage;
    cfg.Replicas = options_.nats.replicas;
    cfg.Discard = js_DiscardNew;  // a full queue or topic refuses publishes (429), as embedded
    cfg.MaxBytes = storage.max_bytes == 0 ? -1 : static_cast<std::int64_t>(storage.max_bytes);
    cfg.MaxAge = Nanos(storage.max_age);
    // The duplicate window: dedupe_window (0: the shortest JetStream takes), never over MaxAge.
    std::int64_t window =
        std::max<std::int64_t>(Nanos(options_.dedupe_window), Nanos(milliseconds(100)));
    if (cfg.MaxAge > 0) window = std::min(window, cfg.MaxAge);
    cfg.Duplicates = window;
    cfg.AllowDirect = allow_direct;
    jsStreamInfo* info = nullptr;
    jsErrCode code{};
    auto s = js_AddStream(&info, js_, &cfg, nullptr, &code);
    if (s != NATS_OK && code == JSStreamNameExistErr) {
      s = js_UpdateStream(&info, js_, &cfg, nullptr, &code);
    }
    if (info != nullptr) jsStreamInfo_Destroy(info);
    if (s != NATS_OK) return ApiError("stream " + name, s, code);
    return Ok();
  }

  Result<void> OpenSubscription(const std::string& topic, const std::string& name,
                                const SubscriptionOptions& options, bool create) {
    const Channel& channel = topics_.at(topic);
    if (auto r = EnsureInbox(Inbox::Subscription(topic, name), channel.stream,
                             SubscriptionConsumer(name), TopicSubjects(topic),
                             TopicReplaySubject(topic, name), options, create);
        !r) {
      return r;
    }
    return Ok();
  }

  jsConsumerConfig ConsumerConfig(const InboxState& state, const std::string& description) {
    jsConsumerConfig cc;
    jsConsumerConfig_Init(&cc);
    cc.Durable = state.consumer.c_str();
    cc.Description = description.c_str();
    cc.AckPolicy = js_AckExplicit;
    cc.AckWait = Nanos(state.options.delivery.lease);
    cc.MaxDeliver = -1;  // Ferry counts deliveries and dead-letters (docs/bus.md)
    cc.FilterSubject = state.filter_subject.c_str();
    cc.MaxAckPending = kMaxAckPending;
    cc.DeliverPolicy = state.options.from_beginning ? js_DeliverAll : js_DeliverNew;
    return cc;
  }

  Result<void> EnsureInbox(const Inbox& inbox, const std::string& stream,
                           const std::string& consumer, const std::string& filter_subject,
                           const std::string& replay_subject, const SubscriptionOptions& options,
                           bool create = true) {
    const std::string key = inbox.ToString();
    auto it = inboxes_.find(key);
    std::shared_ptr<InboxState> state;
    if (it != inboxes_.end()) {
      state = it->second;
    } else {
      state = std::make_shared<InboxState>();
      state->rates = RateMeter<5>(options_.clock(), {});
      state->inbox = inbox;
      state->id = ++next_inbox_id_;
      state->stream = stream;
      state->consumer = consumer;
      state->filter_subject = filter_subject;
      state->replay_subject = replay_subject;
    }
    state->options = options;
    if (create) {
      const std::string description = Hex(EncodeSubscriptionOptions(options));
      jsConsumerConfig cc = ConsumerConfig(*state, description);
      jsConsumerInfo* existing = nullptr;
      jsErrCode code{};
      auto s = js_GetConsumerInfo(&existing, js_, stream.c_str(), consumer.c_str(), nullptr, &code);
      jsConsumerInfo* info = nullptr;
      if (s == NATS_OK) {
        // Where it starts is its own (a replay may have moved it): keep it.
        cc.DeliverPolicy = existing->Config->DeliverPolicy;
        cc.OptStartSeq = existing->Config->OptStartSeq;
        cc.OptStartTime = existing->Config->OptStartTime;
        jsConsumerInfo_Destroy(existing);
        s = js_UpdateConsumer(&info, js_, stream.c_str(), &cc, nullptr, &code);
      } else {
        s = js_AddConsumer(&info, js_, stream.c_str(), &cc, nullptr, &code);
      }
      if (info != nullptr) jsConsumerInfo_Destroy(info);
      if (s != NATS_OK) return ApiError("consumer " + key, s, code);
    }
    if (!state->pull) {
      if (auto r = Bind(*state); !r) return r;
    }
    inboxes_[key] = state;
    return Ok();
  }

  Result<void> Bind(InboxState& state) {
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = state.stream.c_str();
    so.Consumer = state.consumer.c_str();
    so.ManualAck = true;
    auto pull = std::make_shared<PullSub>();
    jsErrCode code{};
    auto s = js_PullSubscribe(&pull->sub, js_, state.filter_subject.c_str(), state.consumer.c_str(),
                              nullptr, &so, &code);
    if (s != NATS_OK) {
      pull->sub = nullptr;
      return ApiError("pull subscription " + state.inbox.ToString(), s, code);
    }
    state.pull = std::move(pull);
    return Ok();
  }

  Result<void> RestartSubscription(const std::string& topic, const std::string& name,
                                   jsDeliverPolicy policy, std::uint64_t seq, std::int64_t time) {
    auto state = Find(Inbox::Subscription(topic, name));
    if (!state) {
      return Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name));
    }
    DropReceipts(*state);
    state->pull.reset();
    state->deferrals.clear();
    jsErrCode code{};
    auto s = js_DeleteConsumer(js_, state->stream.c_str(), state->consumer.c_str(), nullptr, &code);
    if (s != NATS_OK && code != JSConsumerNotFoundErr) return ApiError("delete consumer", s, code);
    const std::string description = Hex(EncodeSubscriptionOptions(state->options));
    jsConsumerConfig cc = ConsumerConfig(*state, description);
    cc.DeliverPolicy = policy;
    cc.OptStartSeq = seq;
    cc.OptStartTime = time;
    jsConsumerInfo* info = nullptr;
    s = js_AddConsumer(&info, js_, state->stream.c_str(), &cc, nullptr, &code);
    if (info != nullptr) jsConsumerInfo_Destroy(info);
    if (s != NATS_OK) return ApiError("consumer " + state->inbox.ToString(), s, code);
    if (auto r = Bind(*state); !r) return r;
    Notify(state);
    return Ok();
  }

  void DropReceipts(InboxState& state) {
    for (auto it = receipts_.begin(); it != receipts_.end();) {
      if (it->second.inbox.get() == &state) {
        leases_.erase({it->second.lease_expires, it->first});
        it = receipts_.erase(it);
      } else {
        ++it;
      }
    }
    state.stats.in_flight = 0;
    state.order.Clear();
    state.held.clear();
    state.released.clear();
    state.redeliver_at.clear();
    state.nacked.clear();
  }

  // --- the publish path

  void StartPublish(PendingPublish p) {
    p.give_up = options_.clock() + kPublishRetryFor;
    const std::uint64_t token = ++next_publish_;
    pending_.emplace(token, std::move(p));
    SendPublish(token);
  }

  void SendPublish(std::uint64_t token) {
    auto it = pending_.find(token);
    if (it == pending_.end()) return;
    PendingPublish& p = it->second;
    natsMsg* msg = nullptr;
    auto s = natsMsg_Create(&msg, p.subject.c_str(), nullptr, p.payload.data(),
                            static_cast<int>(p.payload.size()));
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, kMsgIdHeader, p.msg_id.c_str());
    for (const auto& [key, value] : p.headers) {
      if (s == NATS_OK) s = natsMsgHeader_Set(msg, key.c_str(), value.c_str());
    }
    if (s == NATS_OK) {
      std::lock_guard lock(shared_->mutex);
      shared_->pending.emplace(msg, token);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = kPublishAckWaitMs;
    po.MsgId = p.msg_id.c_str();
    if (s == NATS_OK) s = js_PublishMsgAsync(js_, &msg, &po);
    if (s != NATS_OK) {
      if (msg != nullptr) {
        {
          std::lock_guard lock(shared_->mutex);
          shared_->pending.erase(msg);
        }
        natsMsg_Destroy(msg);
      }
      PubAckResult failed;
      failed.status = s;
      RetryOrFail(token, failed);
    }
  }

  void OnPublished(std::uint64_t token, PubAckResult r) {
    if (r.status == NATS_OK) {
      auto it = pending_.find(token);
      if (it == pending_.end()) return;
      auto done = std::move(it->second.done);
      pending_.erase(it);
      done(std::move(r));
      return;
    }
    RetryOrFail(token, r);
  }

  void RetryOrFail(std::uint64_t token, const PubAckResult& r) {
    auto it = pending_.find(token);
    if (it == pending_.end()) return;
    // Refusals of this message by the stream: final. Anything else (no PubAck in time, no
    // stream leader, no connection) may not have reached the stream, or may have: the same
    // Nats-Msg-Id again is answered as a duplicate if it did.
    std::optional<Error> final_error;
    if (r.error_code == JSStreamMessageExceedsMaximumErr) {
      final_error = Error(ErrorCode::kResourceExhausted,
                          "NATS: " + StatusText(r.status, r.error_code, r.error_text));
    } else if (r.error_code == JSStreamStoreFailedErr &&
               r.error_text.find("maximum") != std::string::npos) {
      final_error =
          Error(ErrorCode::kFull, "NATS: " + StatusText(r.status, r.error_code, r.error_text));
    } else if (r.error_code == JSStreamNotFoundErr ||
               (r.error_code != 0 && r.status != NATS_TIMEOUT && r.status != NATS_NO_RESPONDERS)) {
      final_error = Error(ErrorCode::kUnavailable,
                          "NATS: " + StatusText(r.status, r.error_code, r.error_text));
    } else if (options_.clock() >= it->second.give_up) {
      final_error =
          Error(ErrorCode::kUnavailable, "NATS: no publish acknowledgement: " +
                                             StatusText(r.status, r.error_code, r.error_text));
    }
    if (final_error) {
      auto done = std::move(it->second.done);
      pending_.erase(it);
      done(tl::unexpected(*final_error));
      return;
    }
    retries_.emplace(options_.clock() + kPublishRetryWait, token);
  }

  void CountPublish(Destination::Kind kind, const std::string& name, bool duplicate) {
    auto& channels = kind == Destination::Kind::kQueue ? queues_ : topics_;
    auto it = channels.find(name);
    if (it == channels.end()) return;
    ++(duplicate ? it->second.duplicates : it->second.published);
  }

  // --- the receive path

  void Fetch(std::shared_ptr<InboxState> state, std::size_t want, std::vector<Delivery> got,
             ReceiveCallback done) {
    auto pull = state->pull;
    if (!pull || pull->sub == nullptr) {
      return Post([done = std::move(done)] {
        done(Fail(ErrorCode::kUnavailable, "NATS: no pull subscription"));
      });
    }
    const int batch = static_cast<int>(std::min<std::size_t>(want - got.size(), 1000));
    // On the bus thread, before the job is queued: the pull starts no earlier (see OnFetched).
    const BusTime started = options_.clock();
    worker_->Submit([this, shared = shared_, pull, batch, started, state = std::move(state),
                     got = std::move(got), want, done = std::move(done)]() mutable {
      natsMsgList list{nullptr, 0};
      jsFetchRequest req;
      jsFetchRequest_Init(&req);
      req.Batch = batch;
      req.NoWait = true;
      // NoWait still waits while the consumer has messages pending redelivery (a NAK's delay):
      // Expires bounds that, so a pull that finds nothing answers at once.
      req.Expires = Nanos(kFetchExpires);
      auto s = natsSubscription_FetchRequest(&list, pull->sub, &req);
      auto msgs = std::make_shared<std::vector<MsgPtr>>();
      for (int i = 0; i < list.Count; ++i) {
        msgs->emplace_back(list.Msgs[i]);
        list.Msgs[i] = nullptr;
      }
      natsMsgList_Destroy(&list);
      shared->post([this, shared, s, batch, started, state = std::move(state), got = std::move(got),
                    want, done = std::move(done), msgs]() mutable {
        if (!shared->alive) return;
        OnFetched(std::move(state), s, batch, started, std::move(*msgs), std::move(got), want,
                  std::move(done));
      });
    });
  }

  void OnFetched(std::shared_ptr<InboxState> state, natsStatus status, int batch, BusTime started,
                 std::vector<MsgPtr> msgs, std::vector<Delivery> got, std::size_t want,
                 ReceiveCallback done) {
    if (Find(state->inbox) != state) {  // deleted or replayed meanwhile: hand nothing out
      return done(std::move(got));
    }
    const bool empty_ok = status == NATS_OK || status == NATS_TIMEOUT || status == NATS_NOT_FOUND ||
                          status == NATS_NO_RESPONDERS;
    if (msgs.empty() && !empty_ok && got.empty()) {
      spdlog::debug("bus: fetch from {}: {}", state->inbox.ToString(), StatusText(status));
      return done(std::vector<Delivery>{});
    }
    const std::size_t fetched = msgs.size();
    bool skipped = false;
    const BusTime now = options_.clock();
    for (auto& owned : msgs) {
      std::shared_ptr<natsMsg> msg(owned.release(), MsgDeleter{});
      if (!Offer(state, std::move(msg), now, /*held=*/false, got)) skipped = true;
    }
    if (empty_ok && static_cast<int>(fetched) < batch) {
      // The pull took everything the consumer had for us: a key's head that went back to
      // JetStream and was due well before the pull started, and did not come, went to another
      // node. Its key goes on here.
      for (const auto& [key, seq] : state->order.ExpireWaiting(started - kRedeliveryGrace)) {
        Released(state, key, seq);
      }
      TakeReleased(state, want, got);
    }
    // Skipped ones made room: there may be more behind them.
    if (skipped && got.size() < want && static_cast<int>(fetched) == batch) {
      return Fetch(std::move(state), want, std::move(got), std::move(done));
    }
    done(std::move(got));
  }

  // One fetched message, or a held one that is its key's head now (`held`): handed out (added
  // to `got`; returns true), or not: acked (another subscription's replay, or refused by the
  // filter), terminated (not a Ferry message), NAKed until its deliver_at, held behind its key's
  // head, or dead-lettered.
  bool Offer(const std::shared_ptr<InboxState>& state, std::shared_ptr<natsMsg> msg, BusTime now,
             bool held, std::vector<Delivery>& got) {
    jsMsgMetaData* meta = nullptr;
    if (natsMsg_GetMetaData(&meta, msg.get()) != NATS_OK) return false;  // not a JetStream one
    const std::uint64_t seq = meta->Sequence.Stream;
    const std::uint64_t delivered = meta->NumDelivered;
    jsMsgMetaData_Destroy(meta);
    const char* subject = natsMsg_GetSubject(msg.get());
    // A replayed dead letter of another subscription of this topic.
    if (!state->inbox.is_queue() && subject != nullptr &&
        std::string_view(subject) != TopicEventSubject(state->inbox.topic) &&
        subject != state->replay_subject) {
      natsMsg_Ack(msg.get(), nullptr);
      return false;
    }
    auto message = DecodeMessage(
        std::string_view(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get())));
    if (!message) {
      spdlog::warn("bus: {} sequence {} is not a Ferry message; terminated",
                   state->inbox.ToString(), seq);
      natsMsg_Term(msg.get(), nullptr);
      return false;
    }
    const auto& f = state->options.filter;
    if (!state->inbox.is_queue() &&
        !(FieldMatches(f.type, message->type) && FieldMatches(f.source, message->source) &&
          FieldMatches(f.subject, message->subject))) {
      natsMsg_Ack(msg.get(), nullptr);              // not for this subscription: settled at once
      if (held) Release(state, message->key, seq);  // the filter changed while it was held
      return false;
    }
    const std::string& key = message->key;
    if (!key.empty()) {
      if (!state->order.Admit(key, seq)) {
        Hold(*state, seq, std::move(msg), now);
        return false;
      }
      if (!held && state->held.erase(seq) != 0) {  // JetStream redelivered a held one
        state->released.erase(seq);
        state->nacked.erase(seq);
      }
    }
    if (message->deliver_at && *message->deliver_at > now) {
      const auto wait = *message->deliver_at - now;
      natsMsg_NakWithDelay(msg.get(), duration_cast<milliseconds>(wait).count() + 1, nullptr);
      ++state->deferrals[seq];
      state->waiting[seq] = *message->deliver_at;
      if (!key.empty()) state->order.Waiting(key, seq, *message->deliver_at);
      WakeAt(*message->deliver_at, state);
      return false;
    }
    std::uint32_t deferred = 0;
    if (auto d = state->deferrals.find(seq); d != state->deferrals.end()) deferred = d->second;
    std::uint32_t local = 0;
    if (auto l = state->local_redeliveries.find(seq); l != state->local_redeliveries.end()) {
      local = l->second;
    }
    const auto attempt =
        static_cast<std::uint32_t>(delivered > deferred ? delivered - deferred : 1) + local;
    state->waiting.erase(seq);
    if (!key.empty()) state->order.Out(key, seq);
    const auto& d = state->options.delivery;
    if (d.max_deliveries != 0 && attempt > d.max_deliveries) {
      // The last delivery's lease ran out: JetStream delivered it once more, to Ferry.
      Bury(state, msg, key, seq, attempt - 1,
           fmt::format("max deliveries ({}) exceeded after lease expiry", d.max_deliveries));
      return false;
    }
    // A held one's AckWait ran from its last InProgress: restart it with Ferry's lease.
    if (held) natsMsg_InProgress(msg.get(), nullptr);
    if (attempt > 1) {
      ++state->stats.redelivered;
      ++shared_->redeliveries;
    }
    ++state->stats.delivered;
    ++state->stats.in_flight;
    Delivery delivery;
    delivery.message = std::move(*message);
    delivery.sequence = seq;
    delivery.attempt = attempt;
    delivery.lease_expires = now + d.lease;
    delivery.receipt = fmt::format("{}-{}", state->id, ++next_receipt_);
    receipts_.emplace(delivery.receipt, InFlight{state, std::move(msg), delivery.message.key, seq,
                                                 attempt, delivery.lease_expires});
    leases_.insert({delivery.lease_expires, delivery.receipt});
    got.push_back(std::move(delivery));
    return true;
  }

  // Parses "<inbox id>-<counter>" and finds the delivery. kStale: a receipt this inbox gave
  // that is settled or lost its lease; kInvalid: not one of this inbox's.
  SettleOutcome Lookup(const Inbox& inbox, const std::string& receipt, BusTime now,
                       InFlight** out) {
    auto state = Find(inbox);
    const auto dash = receipt.find('-');
    if (!state || dash == std::string::npos) return SettleOutcome::kInvalid;
    std::uint64_t id = 0;
    std::uint64_t counter = 0;
    try {
      std::size_t used = 0;
      id = std::stoull(receipt.substr(0, dash), &used);
      if (used != dash) return SettleOutcome::kInvalid;
      counter = std::stoull(receipt.substr(dash + 1), &used);
      if (used != receipt.size() - dash - 1) return SettleOutcome::kInvalid;
    } catch (...) {
      return SettleOutcome::kInvalid;
    }
    if (id != state->id || counter == 0 || counter > next_receipt_) return SettleOutcome::kInvalid;
    auto it = receipts_.find(receipt);
    if (it == receipts_.end()) return SettleOutcome::kStale;
    if (it->second.lease_expires <= now) return SettleOutcome::kStale;
    *out = &it->second;
    return SettleOutcome::kOk;
  }

  void Settle(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done,
              const std::function<void(InFlight&)>& apply) {
    if (!Find(inbox)) {
      return Post([done = std::move(done), name = inbox.ToString()] {
        done(Fail(ErrorCode::kNotFound, "unknown queue or subscription " + name));
      });
    }
    std::vector<SettleOutcome> out;
    const BusTime now = options_.clock();
    for (const auto& receipt : receipts) {
      InFlight* f = nullptr;
      const SettleOutcome outcome = Lookup(inbox, receipt, now, &f);
      if (outcome == SettleOutcome::kOk) {
        InFlight flight = std::move(*f);
        leases_.erase({flight.lease_expires, receipt});
        receipts_.erase(receipt);
        if (flight.inbox->stats.in_flight > 0) --flight.inbox->stats.in_flight;
        apply(flight);
      }
      out.push_back(outcome);
    }
    Post([done = std::move(done), out = std::move(out)] { done(out); });
  }

  // Copies the message to the dead-letter stream, then terminates it in its own: no loss if
  // Ferry dies between the two (JetStream redelivers it after AckWait and Ferry copies it again,
  // under the same Nats-Msg-Id, so the second copy is a duplicate and not stored).
  // Its key (if any) waits meanwhile: the key's next message goes out once the copy is stored.
  void Bury(const std::shared_ptr<InboxState>& state, std::shared_ptr<natsMsg> msg,
            const std::string& key, std::uint64_t seq, std::uint32_t attempts, std::string reason) {
    PendingPublish p;
    p.subject = DeadLetterSubject(state->inbox.topic, state->inbox.name);
    p.msg_id = DeadLetterMsgId(state->stream, seq);
    p.payload.assign(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get()));
    p.headers = {{kReasonHeader, reason},
                 {kAttemptsHeader, std::to_string(attempts)},
                 {kSequenceHeader, std::to_string(seq)},
                 {kDeadAtHeader, std::to_string(Micros(options_.clock()))}};
    p.done = [this, state, msg, key, seq](Result<PubAckResult> r) {
      if (!r) {
        // Not copied: leave it to JetStream's redelivery (after AckWait) to try again.
        spdlog::warn("bus: dead letter of {} sequence {} not stored: {}", state->inbox.ToString(),
                     seq, r.error().message());
        if (!key.empty()) {
          state->order.Waiting(key, seq, options_.clock() + state->options.delivery.lease);
        }
        return;
      }
      natsMsg_Term(msg.get(), nullptr);
      Forget(*state, seq);
      ++state->stats.dead_lettered;
      ++shared_->dead_letters;
      Release(state, key, seq);
    };
    StartPublish(std::move(p));
  }

  // Calls visit(dead-letter-stream sequence, letter) for each dead letter of the inbox, oldest
  // first, while it returns true.
  template <typename Visit>
  Result<void> ScanDeadLetters(const InboxState& state, Visit visit) {
    const std::string subject = DeadLetterSubject(state.inbox.topic, state.inbox.name);
    const std::string stream(kDeadLetterStream);
    std::uint64_t next = 1;
    while (true) {
      jsDirectGetMsgOptions o;
      jsDirectGetMsgOptions_Init(&o);
      o.Sequence = next;
      o.NextBySubject = subject.c_str();
      natsMsg* raw = nullptr;
      auto s = js_DirectGetMsg(&raw, js_, stream.c_str(), nullptr, &o);
      if (s == NATS_NOT_FOUND) return Ok();
      if (s != NATS_OK) return ApiError("dead letters", s, jsErrCode{});
      MsgPtr msg(raw);
      const auto dlq_seq = Header(msg.get(), "Nats-Sequence");
      if (!dlq_seq) return Fail(ErrorCode::kInternal, "NATS: direct get without Nats-Sequence");
      const std::uint64_t at = std::stoull(*dlq_seq);
      next = at + 1;
      auto message = DecodeMessage(
          std::string_view(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get())));
      if (!message) continue;
      DeadLetter letter;
      letter.message = std::move(*message);
      letter.reason = Header(msg.get(), kReasonHeader).value_or("");
      letter.attempts =
          static_cast<std::uint32_t>(std::stoul(Header(msg.get(), kAttemptsHeader).value_or("0")));
      letter.sequence = std::stoull(Header(msg.get(), kSequenceHeader).value_or("0"));
      letter.dead_lettered_at = BusTime(
          std::chrono::microseconds(std::stoll(Header(msg.get(), kDeadAtHeader).value_or("0"))));
      if (!visit(at, std::move(letter))) return Ok();
    }
  }

  StorageStats StreamStats(const std::string& stream) const {
    StorageStats out{"stream", {}};
    jsStreamInfo* info = nullptr;
    jsErrCode code{};
    if (js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, &code) == NATS_OK) {
      out.counters = {{"messages", info->State.Msgs},
                      {"bytes", info->State.Bytes},
                      {"first_sequence", info->State.FirstSeq},
                      {"last_sequence", info->State.LastSeq}};
      jsStreamInfo_Destroy(info);
    }
    return out;
  }

  InboxStats InboxStatsOf(const InboxState& state) const {
    InboxStats out = state.stats;
    const BusTime now = options_.clock();
    const auto rates = state.rates.PerSecond(now, RateCounts(state));
    out.rates = {.deliver = rates[0],
                 .redeliver = rates[1],
                 .ack = rates[2],
                 .nack = rates[3],
                 .dead_letter = rates[4]};
    out.blocked = state.held.size() - state.released.size() - state.nacked.size();
    out.delayed = static_cast<std::uint64_t>(std::count_if(
        state.waiting.begin(), state.waiting.end(), [&](const auto& w) { return w.second > now; }));
    jsConsumerInfo* info = nullptr;
    jsErrCode code{};
    if (js_GetConsumerInfo(&info, js_, state.stream.c_str(), state.consumer.c_str(), nullptr,
                           &code) == NATS_OK) {
      // NumPending counts every message after the consumer's position, filtered ones too (for
      // a subscription with a filter, an upper bound, as the embedded backlog is).
      out.ready = info->NumPending + state.released.size();
      jsConsumerInfo_Destroy(info);
    }
    // Dead letters: the dead-letter stream's messages on this inbox's subject.
    jsOptions o;
    jsOptions_Init(&o);
    const std::string subject = DeadLetterSubject(state.inbox.topic, state.inbox.name);
    o.Stream.Info.SubjectsFilter = subject.c_str();
    jsStreamInfo* si = nullptr;
    if (js_GetStreamInfo(&si, js_, std::string(kDeadLetterStream).c_str(), &o, &code) == NATS_OK) {
      if (si->State.Subjects != nullptr) {
        for (int i = 0; i < si->State.Subjects->Count; ++i) {
          if (subject == si->State.Subjects->List[i].Subject) {
            out.dead_letters = si->State.Subjects->List[i].Msgs;
          }
        }
      }
      jsStreamInfo_Destroy(si);
    }
    return out;
  }

  NatsBrokerOptions options_;
  std::shared_ptr<NatsShared> shared_;
  std::mt19937_64 rng_;
  natsOptions* opts_ = nullptr;
  natsConnection* nc_ = nullptr;
  jsCtx* js_ = nullptr;
  std::unique_ptr<FetchWorker> worker_;

  std::map<std::string, Channel> queues_;
  std::map<std::string, Channel> topics_;
  std::map<std::string, std::shared_ptr<InboxState>> inboxes_;  // by Inbox::ToString()
  std::uint32_t next_inbox_id_ = 0;
  std::uint64_t next_receipt_ = 0;
  std::map<std::string, InFlight> receipts_;
  std::set<std::pair<BusTime, std::string>> leases_;  // (lease expiry, receipt)
  std::multimap<BusTime, std::weak_ptr<InboxState>> wakeups_;
  std::uint64_t next_publish_ = 0;
  std::map<std::uint64_t, PendingPublish> pending_;
  std::multimap<BusTime, std::uint64_t> retries_;  // publishes to send again
  // Extended deliveries: when to send the next InProgress (each restarts AckWait).
  std::multimap<BusTime, std::string> keepalives_;
  BusTime next_poll_{};
};

}  // namespace

Result<std::unique_ptr<Broker>> OpenNatsBroker(NatsBrokerOptions options,
                                               std::shared_ptr<NatsShared>* shared_out) {
  // Deliberately never freed: libnats may call back with it during and after the close (see
  // nats_client.hpp); one small object per broker opened.
  auto* keep = new std::shared_ptr<NatsShared>(std::make_shared<NatsShared>());
  auto shared = *keep;
  shared->post = options.post;
  auto broker = std::make_unique<NatsBroker>(std::move(options), shared);
  if (auto r = broker->Connect(); !r) return tl::unexpected(r.error());
  if (shared_out != nullptr) *shared_out = shared;
  return std::unique_ptr<Broker>(std::move(broker));
}

}  // namespace ferry::bus::nats
