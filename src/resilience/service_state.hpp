// What the node keeps per service for the resilience pipeline, shared by all workers and kept
// across config reloads (a reload that keeps a service keeps its budget, breaker, limiter):
// ServiceRegistry, owned by the node, hands each config snapshot the state of each service by
// name. Per-node state goes here as a member (atomics or its own lock inside): the retry budget,
// the circuit breaker and the concurrency limit. The breaker and the limit follow the service's
// own policy (`services.<name>.policy`), whatever the policy of the route a request came by:
// they are the service's, one each, shared by the proxy's routes and the bus's pushes.
// Thread safety: ServiceRegistry::Get and Configure take a lock (snapshot builds and reloads,
// on the main thread); a ServiceState's members are each safe from any worker.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "resilience/circuit_breaker.hpp"
#include "resilience/concurrency_limiter.hpp"
#include "resilience/retry_budget.hpp"

namespace ferry::observability {
class MetricsRegistry;
}  // namespace ferry::observability

namespace ferry::resilience {

struct ServiceState {
  // A service without a breaker policy or a limit, and no metrics (tests).
  ServiceState() : ServiceState("", SystemClock(), nullptr) {}
  ServiceState(const std::string& service, const Clock& clock,
               observability::MetricsRegistry* metrics)
      : breaker(service, std::nullopt, clock, metrics), limiter(service, std::nullopt, metrics) {}
  // The service's policy, from a (re)loaded config: breaker and limit keep their state.
  void Configure(const config::Policy& policy) {
    breaker.Reconfigure(policy.circuit_breaker);
    limiter.Reconfigure(policy.concurrency);
  }

  RetryBudget retry_budget;    // retries and hedges of every route to the service
  CircuitBreaker breaker;      // asked before each try, told each try's outcome
  ConcurrencyLimiter limiter;  // a slot per try in flight (its response included)
};

class ServiceRegistry {
 public:
  // metrics: where breakers and limits register their series (null: none).
  explicit ServiceRegistry(observability::MetricsRegistry* metrics = nullptr,
                           const Clock& clock = SystemClock())
      : metrics_(metrics), clock_(clock) {}

  // The service's state, made on first use; the same object for the same name ever after.
  std::shared_ptr<ServiceState> Get(const std::string& service);
  // Applies each service's policy to its state (made if new), at start and on each reload.
  void Configure(const config::Config& config);
  // The breakers of the config's services, by name (the admin API's).
  std::vector<CircuitBreaker*> Breakers(const config::Config& config);

 private:
  observability::MetricsRegistry* metrics_;
  const Clock& clock_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ServiceState>> states_;
};

}  // namespace ferry::resilience
