// The values the bus API speaks in: a message (a CloudEvent), what a consumer receives, dead
// letters, publish and settle results, and the address of a queue or subscription.
// Thread safety: plain values. Times are wall-clock (system_clock) as given by the broker's
// injected clock, so tests run on fake time.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/units.hpp"

namespace ferry::bus {

using BusTime = std::chrono::system_clock::time_point;
using BusDuration = Duration;  // the config's: one duration type (nanoseconds)

// One message: the CloudEvents context attributes the bus uses plus the data, untouched.
struct Message {
  std::string id;            // ce-id / Idempotency-Key; the de-dup key. Generated if empty.
  std::string key;           // ce-partitionkey: same key = delivered one at a time, in order
  std::string type;          // ce-type (topic filters match on it)
  std::string source;        // ce-source (filters)
  std::string subject;       // ce-subject (filters)
  std::string content_type;  // datacontenttype
  std::map<std::string, std::string> attributes;  // every other ce-* attribute, verbatim
  std::string data;                               // the payload, opaque bytes
  std::optional<BusTime> deliver_at;  // delayed delivery: not delivered before this time
  BusTime published_at{};             // set by the broker on publish (ignored on input)
};

// Where a publish goes.
struct Destination {
  enum class Kind { kQueue, kTopic };
  Kind kind = Kind::kQueue;
  std::string name;  // the queue's or topic's name

  static Destination Queue(std::string name) { return {Kind::kQueue, std::move(name)}; }
  static Destination Topic(std::string name) { return {Kind::kTopic, std::move(name)}; }
};

// What consumers pull from: a queue, or one subscription of a topic.
struct Inbox {
  std::string topic;  // empty for a queue
  std::string name;   // the queue's name, or the subscription's

  static Inbox Queue(std::string name) { return {{}, std::move(name)}; }
  static Inbox Subscription(std::string topic, std::string name) {
    return {std::move(topic), std::move(name)};
  }
  bool is_queue() const { return topic.empty(); }
  std::string ToString() const { return is_queue() ? name : topic + "/" + name; }
};

// The answer to a publish, given once it is acknowledged (durable in batch mode).
struct PublishResult {
  std::string id;              // the message id (generated if the publisher sent none)
  std::uint64_t sequence = 0;  // its sequence in the queue's or topic's log
  bool duplicate = false;      // true: the id was seen within the de-dup window; not stored
};

// One delivery of one message to one consumer.
struct Delivery {
  Message message;
  std::uint64_t sequence = 0;  // the message's sequence in its log (stable across attempts)
  std::string receipt;         // names this delivery only; opaque; for Ack/Nack/Extend
  std::uint32_t attempt = 0;   // 1 on the first delivery
  BusTime lease_expires{};     // redelivered after this unless acked, nacked or extended
};

// What Broker::ReadTopic gives: the stored events after a sequence, and the log's bounds.
struct TopicEvent {
  std::uint64_t sequence = 0;
  Message message;
};
struct TopicRead {
  std::vector<TopicEvent> events;  // oldest first
  std::uint64_t first = 0;         // the oldest sequence still stored (retention deleted those
                                   // before it); last + 1 when none is
  std::uint64_t last = 0;          // the newest acknowledged sequence (0: none yet)
};

// What an ack, nack or extend did with one receipt (the HTTP layer: kOk → ok, kStale → 409,
// kInvalid → 400).
enum class SettleOutcome {
  kOk,       // done
  kStale,    // names an earlier delivery (redelivered since), a settled message or a lost
             // lease; nothing changed
  kInvalid,  // malformed, or names no delivery of this inbox; nothing changed
};

// A message that exhausted max_deliveries.
struct DeadLetter {
  Message message;
  std::uint64_t sequence = 0;  // in the queue's or topic's log
  std::string reason;          // e.g. "max deliveries (5) exceeded after lease expiry"
  std::uint32_t attempts = 0;  // deliveries made
  BusTime dead_lettered_at{};
};

// Per-second rates of one queue or subscription, averaged over the last minute (RateMeter).
struct InboxRates {
  double publish = 0;    // messages stored (queues; duplicates are not stored)
  double deliver = 0;    // deliveries, redeliveries included
  double redeliver = 0;  // deliveries with attempt > 1
  double ack = 0;
  double nack = 0;
  double dead_letter = 0;  // messages moved to the dead letters
};

// Counters and gauges of one queue or subscription.
struct InboxStats {
  std::uint64_t ready = 0;      // depth: deliverable now (plus unread backlog, see below)
  std::uint64_t backlog = 0;    // in the log, not yet read into memory (upper bound for
                                // filtered subscriptions)
  std::uint64_t in_flight = 0;  // leased to a consumer
  std::uint64_t delayed = 0;    // waiting for deliver_at or a redelivery backoff
  std::uint64_t blocked = 0;    // waiting behind an earlier message of the same key
  std::uint64_t dead_letters = 0;
  std::uint64_t published = 0;    // since open (queues; topics count in TopicStats)
  std::uint64_t delivered = 0;    // deliveries, first attempts and redeliveries
  std::uint64_t redelivered = 0;  // deliveries with attempt > 1
  std::uint64_t acked = 0;
  std::uint64_t nacked = 0;
  std::uint64_t lease_expired = 0;
  std::uint64_t dead_lettered = 0;
  std::uint64_t replayed = 0;     // dead letters replayed
  std::uint64_t duplicates = 0;   // publishes answered as duplicates (queues)
  std::uint64_t checkpoints = 0;  // state log checkpoints written (each compacts the log)
  InboxRates rates;               // of the counters above, per second over the last minute
};

// A backend's own counters of one of its stores (the embedded log: a message or state log's
// appends, fsync rounds, bytes, segments...), shown in the stats under `name` as they are: the
// API renders them and does not interpret them.
struct StorageStats {
  std::string name;                                             // e.g. "messages_log"
  std::vector<std::pair<std::string, std::uint64_t>> counters;  // in the order shown
};

struct QueueStats {
  InboxStats inbox;
  std::vector<StorageStats> storage;  // the backend's (embedded: messages_log, state_log)
};

struct SubscriptionStats {
  std::string name;
  InboxStats inbox;
  std::vector<StorageStats> storage;  // the backend's (embedded: state_log)
};

struct TopicStats {
  std::uint64_t published = 0;
  std::uint64_t duplicates = 0;
  double publish_rate = 0;            // events stored per second, over the last minute
  std::vector<StorageStats> storage;  // the backend's (embedded: messages_log)
  std::vector<SubscriptionStats> subscriptions;
};

}  // namespace ferry::bus
