#include "resilience/service_state.hpp"

namespace ferry::resilience {

std::shared_ptr<ServiceState> ServiceRegistry::Get(const std::string& service) {
  const std::lock_guard<std::mutex> lock(mutex_);
  std::shared_ptr<ServiceState>& state = states_[service];
  if (!state) state = std::make_shared<ServiceState>();
  return state;
}

}  // namespace ferry::resilience
