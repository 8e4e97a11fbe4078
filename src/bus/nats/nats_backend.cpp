#include "bus/nats/nats_backend.hpp"

#include "bus/nats/nats_broker.hpp"
#include "bus/nats/nats_client.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Broker>> OpenNatsBackend(const config::Bus& config, BrokerEnvironment env) {
  if (!config.nats) return Fail(ErrorCode::kInvalidArgument, "bus.backend nats needs bus.nats");
  nats::NatsBrokerOptions options;
  options.nats = *config.nats;
  options.dedupe_window = config.dedupe_window;
  options.post = std::move(env.post);
  options.clock = std::move(env.clock);
  std::shared_ptr<nats::NatsShared> shared;
  auto broker = nats::OpenNatsBroker(std::move(options), &shared);
  if (!broker) return broker;
  if (env.metrics != nullptr) {
    // Read at scrape time from the atomics libnats' threads and the bus thread bump. A
    // registry keeps a family for good: the callbacks hold the shared state, not the broker.
    auto& m = *env.metrics;
    const auto value = [shared](std::atomic<std::uint64_t> nats::NatsShared::*field) {
      return [shared, field] { return static_cast<double>((*shared.*field).load()); };
    };
    const std::pair<const char*, std::atomic<std::uint64_t> nats::NatsShared::*> counters[] = {
        {"ferry_bus_nats_publish_acks_total", &nats::NatsShared::publish_acks},
        {"ferry_bus_nats_publish_duplicates_total", &nats::NatsShared::publish_duplicates},
        {"ferry_bus_nats_publish_errors_total", &nats::NatsShared::publish_errors},
        {"ferry_bus_nats_redeliveries_total", &nats::NatsShared::redeliveries},
        {"ferry_bus_nats_dead_letters_total", &nats::NatsShared::dead_letters},
        {"ferry_bus_nats_reconnects_total", &nats::NatsShared::reconnects},
        {"ferry_bus_nats_disconnects_total", &nats::NatsShared::disconnects},
    };
    const char* helps[] = {
        "PubAcks of messages JetStream stored (Ferry's publishes and dead-letter copies).",
        "PubAcks that said duplicate (a Nats-Msg-Id within the duplicate window).",
        "Publishes that failed or got no PubAck in time (each retry counted).",
        "Deliveries with an attempt above 1 (JetStream's redeliveries and Ferry's after a nack).",
        "Messages copied to the dead-letter stream (FERRY_DLQ), then terminated.",
        "Reconnections to the NATS cluster.",
        "Losses of the connection to the NATS cluster.",
    };
    for (std::size_t i = 0; i < std::size(counters); ++i) {
      if (auto r = m.AddCallbackCounter(counters[i].first, helps[i], value(counters[i].second));
          !r) {
        return tl::unexpected(r.error());
      }
    }
    if (auto r = m.AddCallbackGauge("ferry_bus_nats_connected",
                                    "1 while connected to the NATS cluster, else 0.",
                                    [shared] { return shared->connected ? 1.0 : 0.0; });
        !r) {
      return tl::unexpected(r.error());
    }
  }
  return broker;
}

}  // namespace ferry::bus
