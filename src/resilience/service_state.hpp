// What the node keeps per service for the resilience pipeline, shared by all workers and kept
// across config reloads (a reload that keeps a service keeps its budget, breaker, limiter):
// ServiceRegistry, owned by the node, hands each config snapshot the state of each service by
// name. Per-node state goes here as a member (atomics or its own lock inside): the retry budget
// today; the circuit breaker and the concurrency limiter join it.
// Thread safety: ServiceRegistry::Get takes a lock (snapshot builds, on the main thread); a
// ServiceState's members are each safe from any worker.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "resilience/retry_budget.hpp"

namespace ferry::resilience {

struct ServiceState {
  RetryBudget retry_budget;  // retries and hedges of every route to the service
};

class ServiceRegistry {
 public:
  // The service's state, made on first use; the same object for the same name ever after.
  std::shared_ptr<ServiceState> Get(const std::string& service);

 private:
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ServiceState>> states_;
};

}  // namespace ferry::resilience
