// Options of a broker, whatever its backend: each queue, topic and subscription, and what the
// broker gets from its thread (post, clock). Plain values with their defaults; the config
// layer fills them from the `bus:` block. A backend's own options (the embedded log's data
// directory, durability, segment sizes...) are its own (engine/embedded_options.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "bus/message.hpp"
#include "bus/retention_policy.hpp"

namespace ferry::bus {

// Runs a task on the bus thread (the lead passes one that asio::post's onto it). Must be safe
// to call from any thread; the broker calls it from log sync threads and from itself.
using PostFn = std::function<void(std::function<void()>)>;
// Now, on the wall clock. Tests pass a fake one.
using ClockFn = std::function<BusTime()>;

// How a failed delivery (nack without delay, lease expiry) waits before the next attempt:
// initial * multiplier^(failures-1), capped at max.
struct BackoffOptions {
  BusDuration initial = std::chrono::seconds(1);
  BusDuration max = std::chrono::minutes(5);
  double multiplier = 2.0;
};

// Delivery semantics shared by queues and subscriptions.
struct DeliveryOptions {
  // How long a delivery is leased to its consumer before it is redelivered. Default 30 s.
  BusDuration lease = std::chrono::seconds(30);
  // Deliveries before the message moves to the dead letters. Default 5; 0 = never.
  std::uint32_t max_deliveries = 5;
  BackoffOptions backoff;
  // Messages read from the log into memory at most (ready, in flight, waiting). Bounds memory;
  // a key blocked by a poison message can hold at most this many behind it. Default 10000.
  std::uint32_t window = 10000;
};

// Limits and retention of a queue's or topic's message log.
struct StorageOptions {
  // Largest message (encoded: data plus attributes) accepted. Default 1 MiB.
  std::uint32_t max_message_bytes = 1u << 20;
  // The log's bytes on disk at most; publishes past it fail kFull (a full disk is kNoSpace).
  // 0 = no limit (the default).
  std::uint64_t max_bytes = 0;
  // Applied by EnforceRetention; never deletes unacknowledged messages or dead letters
  // unless retention.max_age says so.
  RetentionPolicy retention;
};

struct QueueOptions {
  DeliveryOptions delivery;
  StorageOptions storage;
};

struct TopicOptions {
  StorageOptions storage;
};

// Which events a subscription receives: each set field must match (exact, or prefix when
// the value ends in '*', e.g. "order.*"). Empty fields match everything.
struct SubscriptionFilter {
  std::string type;
  std::string source;
  std::string subject;
};

// Push delivery of a subscription: the bus POSTs each message to `service`. The engine only
// stores it with the other options (so a push set over the API survives a restart); the bus
// API runs it (src/bus/api/push_delivery.cpp) and checks the service exists.
struct PushOptions {
  std::string service;                             // a service of the node's config
  std::string path = "/";                          // the request path; starts with '/'
  BusDuration timeout = std::chrono::seconds(10);  // one delivery attempt; > 0
  std::uint32_t concurrency = 1;                   // deliveries in flight at once; >= 1
};

struct SubscriptionOptions {
  DeliveryOptions delivery;
  SubscriptionFilter filter;
  // Push delivery; none (the default): consumers pull.
  std::optional<PushOptions> push;
  // Where a new subscription starts: the topic's first retained event (true) or the next one
  // published (false, the default). Ignored when the subscription already exists.
  bool from_beginning = false;
};

}  // namespace ferry::bus
