// Creates the broker the config's `bus.backend` names: the one place that knows the backends.
// The HTTP API and the delivery engine see only the Broker interface; a backend's own options,
// stats and metrics stay in the backend (each registers its metrics itself).
// Threading: call it on the bus thread; the broker it returns lives there (see broker.hpp).
#pragma once

#include <cstddef>
#include <memory>

#include "bus/broker.hpp"
#include "config/config.hpp"
#include "core/result.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::bus {

// What a backend gets from the node besides its config.
struct BrokerEnvironment {
  PostFn post;    // required: runs a task on the bus thread
  ClockFn clock;  // default: system_clock::now
  // Where the backend registers its own metrics (e.g. the embedded log's fsync rounds), in
  // `slot` (the bus thread's). Null: none.
  observability::MetricsRegistry* metrics = nullptr;
  std::size_t slot = 0;
};

Result<std::unique_ptr<Broker>> CreateBroker(const config::Bus& config, BrokerEnvironment env);

}  // namespace ferry::bus
