// The bus broker interface the HTTP API and delivery engine use; EmbeddedBroker (the embedded
// log) is the first implementation, a NATS JetStream one may follow.
//
// Threading. A broker is single-threaded: every call, and every callback and listener it
// invokes, runs on the one bus thread. Completions (publish and ack callbacks, ready
// listeners) are never invoked from inside the call that caused them: they go through the
// backend's PostFn (broker_options.hpp), so callers need no re-entrancy guards.
//
// Errors. Result codes (core/result.hpp): kNotFound for an unknown queue/topic/subscription,
// kInvalidArgument for bad names or input, kResourceExhausted for a message over the size
// limit (HTTP 413), kFull for a queue/topic at its max_bytes (HTTP 429: it passes once
// consumers free space), kNoSpace for a full disk (HTTP 507). kIo once a log has failed closed.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/broker_options.hpp"
#include "bus/message.hpp"
#include "core/result.hpp"

namespace ferry::bus {

class Broker {
 public:
  using PublishCallback = std::function<void(Result<PublishResult>)>;
  using SettleCallback = std::function<void(Result<std::vector<SettleOutcome>>)>;
  using ReceiveCallback = std::function<void(Result<std::vector<Delivery>>)>;
  using ReplayCallback = std::function<void(Result<std::size_t>)>;  // messages replayed
  using DoneCallback = std::function<void(Result<void>)>;

  virtual ~Broker() = default;

  // Declares a queue, topic or subscription (config at start-up, or the API). Declaring one
  // that exists updates its options (delivery and filter apply from now on) and is Ok.
  // Subscriptions persist; queues and topics are re-declared from config at each start (their
  // data persists either way).
  virtual Result<void> CreateQueue(const std::string& name, const QueueOptions& options) = 0;
  virtual Result<void> CreateTopic(const std::string& name, const TopicOptions& options) = 0;
  virtual Result<void> CreateSubscription(const std::string& topic, const std::string& name,
                                          const SubscriptionOptions& options) = 0;
  // Deletes a subscription and everything it holds: cursor, deliveries in flight, messages not
  // yet acked, dead letters. From the call on it is unknown (kNotFound to every call naming
  // it; its receipts are void); `done` runs Ok once the deletion is durable (it does not come
  // back after a crash; a crash before that leaves it whole). Re-creating it meanwhile fails
  // kFailedPrecondition. kNotFound for an unknown topic or subscription. Deletes whatever
  // CreateSubscription made, also one the caller declared from its config: refusing those
  // is the caller's business.
  virtual void DeleteSubscription(const std::string& topic, const std::string& name,
                                  DoneCallback done) = 0;
  // Runs `done` once everything CreateSubscription (or a settle) wrote to the subscription's
  // state is acknowledged: fsynced in kBatch mode, so a PUT answered after it survives a
  // power cut. kNotFound for an unknown topic or subscription.
  virtual void WhenSubscriptionStored(const std::string& topic, const std::string& name,
                                      DoneCallback done) = 0;
  virtual std::vector<std::string> Queues() const = 0;
  virtual std::vector<std::string> Topics() const = 0;
  virtual Result<std::vector<std::string>> Subscriptions(const std::string& topic) const = 0;

  // Publishes; `done` is called once, when the message is acknowledged (durable in batch
  // mode) or failed. A duplicate id (within the de-dup window) is not stored again; its
  // answer (duplicate = true, the original's sequence) waits until the original is durable.
  virtual void Publish(const Destination& to, Message message, PublishCallback done) = 0;

  // Takes up to `max` messages deliverable now, each leased for the inbox's lease, and gives
  // them to `done` (called once, posted; a backend may fetch them from elsewhere meanwhile, as
  // a JetStream pull does). Never waits for messages: empty when none is ready (long-poll with
  // SetReadyListener; a ready notification may come between the call and `done`).
  virtual void Receive(const Inbox& from, std::size_t max, ReceiveCallback done) = 0;
  // Settles deliveries; one outcome per receipt, in order. `done` runs once the acks are
  // durable (batch mode); an ack that was not yet durable at a crash may be redelivered.
  virtual void Ack(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done) = 0;
  // Redelivers after `delay`, or after the inbox's backoff when none is given.
  virtual void Nack(const Inbox& inbox, std::vector<std::string> receipts,
                    std::optional<BusDuration> delay, SettleCallback done) = 0;
  // Extends the leases of in-flight deliveries to now + `extension`.
  virtual Result<std::vector<SettleOutcome>> Extend(const Inbox& inbox,
                                                    const std::vector<std::string>& receipts,
                                                    BusDuration extension) = 0;

  // Dead letters, oldest first, starting after sequence `after` (paging), at most `max`.
  virtual Result<std::vector<DeadLetter>> DeadLetters(const Inbox& inbox, std::size_t max,
                                                      std::uint64_t after = 0) = 0;
  // Puts dead letters back for delivery as new deliveries (attempt 1), all of them or those
  // with these message ids; de-duplication does not apply. `done` gets how many.
  virtual void ReplayDeadLetters(const Inbox& inbox, std::vector<std::string> ids,
                                 ReplayCallback done) = 0;
  // Resets a subscription's cursor to the first event at or after `sequence` / `time`;
  // in-flight deliveries become stale, acks and waits before it are forgotten.
  virtual Result<void> ReplaySubscription(const std::string& topic, const std::string& name,
                                          std::uint64_t sequence) = 0;
  virtual Result<void> ReplaySubscriptionFrom(const std::string& topic, const std::string& name,
                                              BusTime time) = 0;

  // Long-poll support. `listener` is posted (coalesced, possibly spuriously) when messages
  // may have become deliverable in `inbox`; empty function removes it.
  virtual Result<void> SetReadyListener(const Inbox& inbox, std::function<void()> listener) = 0;
  // When Tick next has work (a lease expiring, a delayed message or backoff coming due);
  // nullopt if none. Re-read after every broker call; arm one timer for it.
  virtual std::optional<BusTime> NextWakeup() const = 0;
  // Expires leases and releases delayed messages due by the clock's now.
  virtual void Tick() = 0;
  // Deletes old segments per each queue's/topic's retention (call it every few seconds), off
  // the calling thread (each unlink waits for a directory fsync); `done` runs (posted) once
  // every log has finished, with the first error (not at all if a log closes first).
  virtual void EnforceRetention(DoneCallback done) = 0;

  // Samples the counters behind the stats' rates (per second, over the last minute), and
  // refreshes the backend's own gauges if it registered any. Call it about once a second;
  // cheap (a copy of six counters per inbox, at most every 5 s).
  virtual void SampleRates() = 0;

  virtual Result<QueueStats> GetQueueStats(const std::string& queue) const = 0;
  virtual Result<TopicStats> GetTopicStats(const std::string& topic) const = 0;
  // One subscription's stats, and the options it runs with now (declared or last PUT).
  // kNotFound for an unknown topic or subscription.
  virtual Result<SubscriptionStats> GetSubscriptionStats(const std::string& topic,
                                                         const std::string& name) const = 0;
  virtual Result<SubscriptionOptions> GetSubscriptionOptions(const std::string& topic,
                                                             const std::string& name) const = 0;

  // Reading a topic's log as it grows, for streaming it to clients (topic routes): the
  // acknowledged events after sequence `after`, oldest first, at most max_events and, past the
  // first, about max_bytes of data. kNotFound for an unknown topic. A backend that cannot
  // answers kFailedPrecondition (the default; the config refuses topic routes on it).
  virtual Result<TopicRead> ReadTopic(const std::string& topic, std::uint64_t after,
                                      std::size_t max_events, std::size_t max_bytes) {
    (void)topic, (void)after, (void)max_events, (void)max_bytes;
    return Fail(ErrorCode::kFailedPrecondition, "this bus backend cannot stream a topic");
  }
  // `listener` runs (on the bus thread, after the call that caused it) when events were
  // acknowledged in `topic`; coalesced; an empty function removes it. Errors as ReadTopic.
  virtual Result<void> SetTopicListener(const std::string& topic, std::function<void()> listener) {
    (void)topic, (void)listener;
    return Fail(ErrorCode::kFailedPrecondition, "this bus backend cannot stream a topic");
  }

  // Whether the backend can serve now (a cluster backend: connected). The one call that may
  // come from any thread (the admin's /ready): an atomic read. The embedded log always can.
  virtual bool Available() const { return true; }
};

}  // namespace ferry::bus
