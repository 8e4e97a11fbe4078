// Options of a broker, whatever its backend: each queue, topic and subscription, and what the
// broker gets from its thread (post, clock). The option types are the config's (config.hpp:
// BusDelivery, BusSubscriptionOptions, ...), defined once with their defaults and comments: the
// loader fills what the broker runs with, and a subscription PUT is read by the same code. A
// backend's own options (the embedded log's data directory, durability, segment sizes...) are
// its own (engine/embedded_options.hpp).
#pragma once

#include <functional>

#include "bus/message.hpp"
#include "config/config.hpp"

namespace ferry::bus {

// Runs a task on the bus thread (the lead passes one that asio::post's onto it). Must be safe
// to call from any thread; the broker calls it from log sync threads and from itself.
using PostFn = std::function<void(std::function<void()>)>;
// Now, on the wall clock. Tests pass a fake one.
using ClockFn = std::function<BusTime()>;

// How a failed delivery (nack without delay, lease expiry) waits before the next attempt:
// initial * multiplier^(failures-1), capped at max.
using BackoffOptions = config::BusBackoff;
// Delivery semantics shared by queues and subscriptions: lease, max_deliveries, backoff, window.
using DeliveryOptions = config::BusDelivery;
// Limits and retention of a queue's or topic's message log: max_message_bytes (larger is
// kResourceExhausted), max_bytes (a publish past it is kFull; retention keeps the log under it
// too), max_age. Retention deletes consumed segments as well ("keep until consumed"), and never
// unacknowledged messages or dead letters unless max_age says so.
using StorageOptions = config::BusStorage;
using QueueOptions = config::BusQueueOptions;
using TopicOptions = config::BusTopicOptions;
// Which events a subscription receives: each set field must match (exact, or prefix when
// the value ends in '*', e.g. "order.*"). Empty fields match everything.
using SubscriptionFilter = config::BusFilter;
// Push delivery of a subscription or queue: the bus POSTs each message to `service`. The engine
// only stores it with the other options (so a push set over the API survives a restart); the
// bus API runs it (src/bus/api/push_delivery.cpp) and checks the service exists.
using PushOptions = config::BusPush;
// A subscription's delivery, filter, push and start (from_beginning: ignored when it exists).
using SubscriptionOptions = config::BusSubscriptionOptions;

}  // namespace ferry::bus
