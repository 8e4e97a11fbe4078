// NatsBroker: the Broker interface (broker.hpp) on NATS JetStream. A queue is a work-queue
// stream with one durable pull consumer; a topic a limits stream with one durable pull consumer
// per subscription; dead letters one stream (FERRY_DLQ) that Ferry fills (JetStream has none).
// Names: nats_names.hpp. The mapping of every option, and what differs from the embedded log:
// docs/bus.md, "Backends".
//
// Threading: as broker.hpp says, everything on the bus thread. Pulls run on a FetchWorker
// thread, publish acknowledgements and connection events on libnats' threads; all of them post
// to the bus thread before touching broker state. Some management calls (declare, stats, dead
// letter listing, subscription replay) are JetStream API requests made on the bus thread,
// bounded by the JetStream request timeout (5 s): management, not the message path.
// Internal to src/bus/nats: the factory reaches it through nats_backend.hpp.
#pragma once

#include <memory>

#include "bus/broker.hpp"
#include "config/config.hpp"

namespace ferry::bus::nats {

struct NatsShared;

struct NatsBrokerOptions {
  config::BusNats nats;
  Duration dedupe_window = std::chrono::minutes(10);
  PostFn post;
  ClockFn clock;
};

// Connects (blocking: kUnavailable when no server answers) and returns the broker, and the
// state it shares with libnats' threads (for the metrics, read at scrape time).
Result<std::unique_ptr<Broker>> OpenNatsBroker(NatsBrokerOptions options,
                                               std::shared_ptr<NatsShared>* shared = nullptr);

}  // namespace ferry::bus::nats
