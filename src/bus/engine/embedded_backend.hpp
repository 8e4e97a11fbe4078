// The embedded log as a bus backend (bus.backend: embedded): EmbeddedBroker opened with the
// options the `bus:` block gives, and its fsync metrics registered. Only broker_factory.cpp
// calls it.
#pragma once

#include <memory>

#include "bus/broker_factory.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Broker>> OpenEmbeddedBackend(const config::Bus& config,
                                                    BrokerEnvironment env);

}  // namespace ferry::bus
