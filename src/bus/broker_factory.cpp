#include "bus/broker_factory.hpp"

#include "bus/engine/embedded_backend.hpp"
#include "bus/nats/nats_backend.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Broker>> CreateBroker(const config::Bus& config, BrokerEnvironment env) {
  switch (config.backend) {
    case config::BusBackend::kEmbedded:
      return OpenEmbeddedBackend(config, std::move(env));
    case config::BusBackend::kNats:
      return OpenNatsBackend(config, std::move(env));
  }
  return Fail(ErrorCode::kInvalidArgument, "unknown bus backend");
}

}  // namespace ferry::bus
