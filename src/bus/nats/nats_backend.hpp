// The NATS JetStream cluster as a bus backend (bus.backend: nats): a NatsBroker connected to
// the `bus.nats` servers, with its metrics registered (publish acknowledgements, redeliveries,
// reconnects, the connection's state). Only broker_factory.cpp calls it.
//
// Threading: call it on the bus thread. It connects before it returns (blocking, bounded by
// bus.nats.connect_timeout per server): no server reachable fails the start (kUnavailable).
// libnats calls back on its own threads; NatsBroker posts every such event to the bus thread
// (BrokerEnvironment::post) before it touches broker state, as broker.hpp requires.
#pragma once

#include <memory>

#include "bus/broker_factory.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Broker>> OpenNatsBackend(const config::Bus& config, BrokerEnvironment env);

}  // namespace ferry::bus
