// The embedded log as a bus backend (bus.backend: embedded): EmbeddedBroker opened with the
// options the `bus:` block gives, and its own metrics registered: the fsync histograms, and the
// fsync and retention gauges of each log (set each second, from SampleRates). Only
// broker_factory.cpp calls it.
#pragma once

#include <memory>

#include "bus/broker_factory.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Broker>> OpenEmbeddedBackend(const config::Bus& config,
                                                    BrokerEnvironment env);

}  // namespace ferry::bus
