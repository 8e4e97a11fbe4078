#include "resilience/service_state.hpp"

namespace ferry::resilience {

std::shared_ptr<ServiceState> ServiceRegistry::Get(const std::string& service) {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::shared_ptr<ServiceState>& state = states_[service];
  if (!state) state = std::make_shared<ServiceState>(service, clock_, metrics_);
  return state;
}

void ServiceRegistry::Configure(const config::Config& config) {
  for (const auto& [name, service] : config.services) {
    const auto policy = config.policies.find(service.policy);
    Get(name)->Configure(policy != config.policies.end() ? policy->second : config::Policy{});
  }
}

std::vector<CircuitBreaker*> ServiceRegistry::Breakers(const config::Config& config) {
  std::vector<CircuitBreaker*> out;
  for (const auto& [name, service] : config.services) out.push_back(&Get(name)->breaker);
  return out;
}

}  // namespace ferry::resilience
