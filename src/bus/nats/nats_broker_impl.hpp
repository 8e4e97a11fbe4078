// NatsBroker's class, shared by the files that implement it (internal to src/bus/nats; the
// factory reaches the broker through nats_broker.hpp): nats_broker.cpp (connection,
// declarations, stats), nats_publish.cpp (the publish path: PubAcks, retries), nats_receive.cpp
// (pulls, leases, settling, per-key order, the timers of Tick), nats_dead_letters.cpp (copying
// to FERRY_DLQ, listing, replay). What each member does: nats_broker.hpp's summary and
// docs/bus.md, "Backends".
//
// Threading: the bus thread's, as nats_broker.hpp says.
#pragma once

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
#include "bus/nats/nats_broker.hpp"
#include "bus/nats/nats_client.hpp"
#include "bus/nats/nats_names.hpp"

namespace ferry::bus::nats {

using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

// How long Ferry keeps retrying a publish whose PubAck did not come (a lost ack, a leader
// election): always with the same Nats-Msg-Id, so a retry of a stored message is a duplicate.
inline constexpr auto kPublishRetryFor = std::chrono::seconds(20);
inline constexpr auto kPublishRetryWait = milliseconds(250);
inline constexpr std::int64_t kPublishAckWaitMs = 5000;
inline constexpr std::int64_t kApiWaitMs = 5000;
// The longest a no-wait pull may wait on the server (see Fetch).
inline constexpr auto kFetchExpires = milliseconds(100);
// How often long polls look for messages published through other nodes.
inline constexpr auto kForeignPublishPoll = milliseconds(500);
// A consumer's outstanding unacknowledged deliveries (JetStream's MaxAckPending): deliveries in
// flight and messages held behind their key's head together.
inline constexpr std::int64_t kMaxAckPending = 20000;
// How late a key's head that went back to JetStream (a nack, a deferral, a lease that ran out)
// may be redelivered before a fetch that drained the consumer without it lets the key go on: it
// went to another Ferry node (see KeyOrder). JetStream moves a due message to its redelivery
// queue on a timer, a moment after it is due.
inline constexpr auto kRedeliveryGrace = std::chrono::seconds(2);

// Dead letters: the headers beside the original stored bytes.
inline constexpr const char* kReasonHeader = "Ferry-Reason";
inline constexpr const char* kAttemptsHeader = "Ferry-Attempts";
inline constexpr const char* kSequenceHeader = "Ferry-Sequence";
inline constexpr const char* kDeadAtHeader = "Ferry-Dead-At";  // microseconds since the epoch
inline constexpr const char* kMsgIdHeader = "Nats-Msg-Id";

inline std::int64_t Nanos(Duration d) { return duration_cast<nanoseconds>(d).count(); }
inline std::int64_t Micros(BusTime t) {
  return duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

inline std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

inline std::optional<std::string> Unhex(std::string_view text) {
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

inline std::string StatusText(natsStatus s, int error_code = 0, const std::string& text = {}) {
  std::string out = natsStatus_GetText(s);
  if (error_code != 0) out += fmt::format(" (JetStream error {})", error_code);
  if (!text.empty()) out += ": " + text;
  return out;
}

inline tl::unexpected<Error> ApiError(std::string_view what, natsStatus s, jsErrCode code) {
  return Fail(ErrorCode::kUnavailable,
              fmt::format("NATS: {}: {}", what, StatusText(s, static_cast<int>(code))));
}

inline bool FieldMatches(const std::string& pattern, const std::string& value) {
  if (pattern.empty()) return true;
  if (pattern.back() == '*') {
    return value.size() >= pattern.size() - 1 &&
           value.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0;
  }
  return pattern == value;
}

inline std::optional<std::string> Header(natsMsg* msg, const char* key) {
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

  Result<void> Connect();

  // --- declarations

  Result<void> CreateQueue(const std::string& name, const QueueOptions& options) override;

  Result<void> CreateTopic(const std::string& name, const TopicOptions& options) override;

  Result<void> CreateSubscription(const std::string& topic, const std::string& name,
                                  const SubscriptionOptions& options) override;

  void DeleteSubscription(const std::string& topic, const std::string& name,
                          DoneCallback done) override;

  void WhenSubscriptionStored(const std::string& topic, const std::string& name,
                              DoneCallback done) override;

  std::vector<std::string> Queues() const override { return Keys(queues_); }
  std::vector<std::string> Topics() const override { return Keys(topics_); }
  Result<std::vector<std::string>> Subscriptions(const std::string& topic) const override;

  // --- publishing

  void Publish(const Destination& to, Message message, PublishCallback done) override;

  // --- consuming

  void Receive(const Inbox& from, std::size_t max, ReceiveCallback done) override;

  void Ack(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done) override;

  void Nack(const Inbox& inbox, std::vector<std::string> receipts, std::optional<BusDuration> delay,
            SettleCallback done) override;

  Result<std::vector<SettleOutcome>> Extend(const Inbox& inbox,
                                            const std::vector<std::string>& receipts,
                                            BusDuration extension) override;

  // --- dead letters

  Result<std::vector<DeadLetter>> DeadLetters(const Inbox& inbox, std::size_t max,
                                              std::uint64_t after) override;

  void ReplayDeadLetters(const Inbox& inbox, std::vector<std::string> ids,
                         ReplayCallback done) override;

  // --- subscription replay

  Result<void> ReplaySubscription(const std::string& topic, const std::string& name,
                                  std::uint64_t sequence) override;

  Result<void> ReplaySubscriptionFrom(const std::string& topic, const std::string& name,
                                      BusTime time) override;

  // --- long-poll support

  Result<void> SetReadyListener(const Inbox& inbox, std::function<void()> listener) override {
    auto state = Find(inbox);
    if (!state) return Fail(ErrorCode::kNotFound, "unknown queue or subscription");
    state->listener = std::move(listener);
    return Ok();
  }

  std::optional<BusTime> NextWakeup() const override;

  void Tick() override;

  void EnforceRetention(DoneCallback done) override {
    // The streams' own limits (max_bytes, max_age, work-queue removal on ack) do it.
    Post([done = std::move(done)] { done(Ok()); });
  }

  void SampleRates() override;

  // --- stats

  Result<QueueStats> GetQueueStats(const std::string& queue) const override;

  Result<TopicStats> GetTopicStats(const std::string& topic) const override;

  Result<SubscriptionStats> GetSubscriptionStats(const std::string& topic,
                                                 const std::string& name) const override;

  Result<SubscriptionOptions> GetSubscriptionOptions(const std::string& topic,
                                                     const std::string& name) const override;

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

  std::string NewId();

  std::shared_ptr<InboxState> Find(const Inbox& inbox) const {
    auto it = inboxes_.find(inbox.ToString());
    return it == inboxes_.end() ? nullptr : it->second;
  }

  static BusDuration Backoff(const DeliveryOptions& d, std::uint32_t failures);

  // Long polls of this node learn of its own publishes here; of other nodes' from the poll
  // timer in Tick.
  void NotifyDestination(Destination::Kind kind, const std::string& name);

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
  void Hold(InboxState& state, std::uint64_t seq, std::shared_ptr<natsMsg> msg, BusTime now);

  // A nacked delivery is held by this node until `at`, then handed out again by it, rather than
  // NAKed to JetStream with the delay: nats-server before 2.10.15 can lose a redelivery it takes
  // from its redelivery queue for a pull request that has expired (nats-server#5338), leaving
  // the message unacknowledged until AckWait; Ferry's short pulls expire often. Held, it also
  // stays its key's head here and on no other node. JetStream's delivery count does not see
  // these redeliveries: Ferry adds them (local_redeliveries), until a restart of Ferry.
  void Redeliver(const std::shared_ptr<InboxState>& state, std::uint64_t seq,
                 std::shared_ptr<natsMsg> msg, BusTime at);

  // Forgets what Ferry kept about a message that is settled for good.
  static void Forget(InboxState& state, std::uint64_t seq);

  // `seq` of `key` is settled (acked, dead-lettered): the key's next held message goes out
  // with the next Receive.
  void Release(const std::shared_ptr<InboxState>& state, const std::string& key, std::uint64_t seq);

  void Released(const std::shared_ptr<InboxState>& state, const std::string& key,
                std::uint64_t seq);

  // Hands out held messages that are their key's head now, up to `max` in all.
  void TakeReleased(const std::shared_ptr<InboxState>& state, std::size_t max,
                    std::vector<Delivery>& got);

  // Adds the stream, or updates its limits when it exists (placement and retention stay).
  Result<void> EnsureStream(const std::string& name, const std::vector<std::string>& subjects,
                            jsRetentionPolicy retention, const StorageOptions& storage,
                            bool allow_direct);

  Result<void> OpenSubscription(const std::string& topic, const std::string& name,
                                const SubscriptionOptions& options, bool create);

  jsConsumerConfig ConsumerConfig(const InboxState& state, const std::string& description);

  Result<void> EnsureInbox(const Inbox& inbox, const std::string& stream,
                           const std::string& consumer, const std::string& filter_subject,
                           const std::string& replay_subject, const SubscriptionOptions& options,
                           bool create = true);

  Result<void> Bind(InboxState& state);

  Result<void> RestartSubscription(const std::string& topic, const std::string& name,
                                   jsDeliverPolicy policy, std::uint64_t seq, std::int64_t time);

  void DropReceipts(InboxState& state);

  // --- the publish path

  void StartPublish(PendingPublish p);

  void SendPublish(std::uint64_t token);

  void OnPublished(std::uint64_t token, PubAckResult r);

  void RetryOrFail(std::uint64_t token, const PubAckResult& r);

  void CountPublish(Destination::Kind kind, const std::string& name, bool duplicate);

  // --- the receive path

  void Fetch(std::shared_ptr<InboxState> state, std::size_t want, std::vector<Delivery> got,
             ReceiveCallback done);

  void OnFetched(std::shared_ptr<InboxState> state, natsStatus status, int batch, BusTime started,
                 std::vector<MsgPtr> msgs, std::vector<Delivery> got, std::size_t want,
                 ReceiveCallback done);

  // One fetched message, or a held one that is its key's head now (`held`): handed out (added
  // to `got`; returns true), or not: acked (another subscription's replay, or refused by the
  // filter), terminated (not a Ferry message), NAKed until its deliver_at, held behind its key's
  // head, or dead-lettered.
  bool Offer(const std::shared_ptr<InboxState>& state, std::shared_ptr<natsMsg> msg, BusTime now,
             bool held, std::vector<Delivery>& got);

  // Parses "<inbox id>-<counter>" and finds the delivery. kStale: a receipt this inbox gave
  // that is settled or lost its lease; kInvalid: not one of this inbox's.
  SettleOutcome Lookup(const Inbox& inbox, const std::string& receipt, BusTime now, InFlight** out);

  void Settle(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done,
              const std::function<void(InFlight&)>& apply);

  // Copies the message to the dead-letter stream, then terminates it in its own: no loss if
  // Ferry dies between the two (JetStream redelivers it after AckWait and Ferry copies it again,
  // under the same Nats-Msg-Id, so the second copy is a duplicate and not stored).
  // Its key (if any) waits meanwhile: the key's next message goes out once the copy is stored.
  void Bury(const std::shared_ptr<InboxState>& state, std::shared_ptr<natsMsg> msg,
            const std::string& key, std::uint64_t seq, std::uint32_t attempts, std::string reason);

  // Calls visit(dead-letter-stream sequence, letter) for each dead letter of the inbox, oldest
  // first, while it returns true.
  template <typename Visit>
  Result<void> ScanDeadLetters(const InboxState& state, Visit visit);

  StorageStats StreamStats(const std::string& stream) const;

  InboxStats InboxStatsOf(const InboxState& state) const;

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

}  // namespace ferry::bus::nats
