// The node-wide health of one service's endpoints, shared by the clusters of every worker (and
// the node's health checker): outlier ejection (an endpoint failing `consecutive_failures`
// requests in a row is ejected for base_ejection × (times ejected before + 1), at most
// max_ejection, and never more than max_ejected of the service's endpoints at once) and the
// verdict of active health checks (unhealthy after `unhealthy_after` failed checks in a row,
// healthy again after `healthy_after` passes; healthy until the first check says otherwise).
// A cluster's Pick skips an endpoint that is ejected or unhealthy (Usable()).
// Keyed by endpoint id ("10.0.0.7:8080"): each worker has its own Endpoint objects, all point
// at the one EndpointStatus of their id. A HealthRegistry, owned by the node, keeps one
// ServiceHealth per service name across config reloads.
// Thread safety: everything here may be called from any thread. The request path (Succeeded,
// Failed below the threshold, Usable, usable_hint) takes no lock; ejections, returns, check
// results and endpoint set changes take the service's mutex.
// Time: callers pass `now` (their cluster's clock; a FakeClock in tests).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace ferry::upstream {

// One endpoint's node-wide state. The atomics are read on the request path; the rest belongs
// to ServiceHealth (under its mutex).
struct EndpointStatus {
  using TimePoint = std::chrono::steady_clock::time_point;
  explicit EndpointStatus(std::string endpoint_id) : id(std::move(endpoint_id)) {}

  const std::string id;
  std::atomic<std::uint32_t> consecutive_failures{0};  // node-wide, since the last success
  std::atomic<std::int64_t> ejected_until{0};          // steady_clock ticks; 0: not ejected
  std::atomic<bool> check_failed{false};               // the active health check says unhealthy

  // True when load balancing may pick it.
  bool Usable(TimePoint now) const {
    return !check_failed.load(std::memory_order_relaxed) &&
           now.time_since_epoch().count() >= ejected_until.load(std::memory_order_relaxed);
  }

  // --- ServiceHealth's, under its mutex.
  bool ejected = false;              // counted as ejected (until its return is noticed)
  std::uint32_t times_ejected = 0;   // grows the next ejection time; forgotten after a quiet
                                     // max_ejection
  TimePoint returned_at{};           // end of the latest ejection
  std::uint32_t check_passes = 0;    // in a row
  std::uint32_t check_failures = 0;  // in a row
};

// What a ServiceHealth counted since it was made (for metrics: the node copies them).
struct ServiceHealthCounts {
  std::uint64_t ejections = 0;
  std::uint64_t checks_passed = 0;
  std::uint64_t checks_failed = 0;
  std::uint32_t ejected = 0;    // endpoints ejected now
  std::uint32_t healthy = 0;    // endpoints neither ejected nor failing their health check now
  std::uint32_t endpoints = 0;  // endpoints known
};

// One endpoint as an operator sees it (GET /stats).
struct EndpointHealthView {
  std::string id;
  std::chrono::steady_clock::duration ejected_for{};  // time left of its ejection; 0: not ejected
  std::uint32_t times_ejected = 0;
  bool check_failed = false;  // out because of its health check
};

class ServiceHealth {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit ServiceHealth(std::string service);
  ServiceHealth(const ServiceHealth&) = delete;
  ServiceHealth& operator=(const ServiceHealth&) = delete;

  const std::string& service() const { return service_; }

  // The service's outlier detection (its policy's; none: nothing is ejected, and endpoints
  // ejected now stay so until their time ends).
  void SetOutlierDetection(std::optional<config::OutlierDetectionPolicy> policy);
  // The service's endpoints now (a config snapshot's): statuses of the others are dropped, and
  // max_ejected is a share of this many. Before the first call, of the statuses handed out.
  void SetEndpoints(const std::vector<std::string>& ids);
  // The status of endpoint `id`, made on first use.
  std::shared_ptr<EndpointStatus> Status(const std::string& id);

  // Outcomes of requests (Cluster::Send reports them).
  void Succeeded(EndpointStatus& status) {
    if (status.consecutive_failures.load(std::memory_order_relaxed) != 0) {
      status.consecutive_failures.store(0, std::memory_order_relaxed);
    }
  }
  // May eject the endpoint (logged once, counted).
  void Failed(EndpointStatus& status, TimePoint now);

  // An active health check's result for endpoint `id` (an id not known is ignored): the
  // endpoint turns unhealthy after `unhealthy_after` failures in a row and healthy after
  // `healthy_after` passes (each change logged once).
  void CheckResult(const std::string& id, bool passed, std::uint32_t unhealthy_after,
                   std::uint32_t healthy_after);
  // Forgets the health checks' verdicts (the service no longer has a health block).
  void ClearChecks();

  // Notices ejections whose time ended (logs each return once); call it now and then.
  void Expire(TimePoint now);

  // Zero when every endpoint is usable for sure: Pick need not look at each one. (Non-zero
  // means some endpoint was ejected or failed its check; an ejection may have ended since.)
  std::uint32_t usable_hint() const { return unusable_.load(std::memory_order_relaxed); }

  ServiceHealthCounts counts(TimePoint now) const;
  std::vector<EndpointHealthView> endpoints(TimePoint now) const;  // by id

 private:
  void ExpireLocked(TimePoint now);
  void Recount();  // unusable_ from the statuses

  const std::string service_;
  std::atomic<std::uint32_t> threshold_{0};  // consecutive failures that eject; 0: never
  std::atomic<std::uint32_t> unusable_{0};
  mutable std::mutex mutex_;
  config::OutlierDetectionPolicy policy_;  // under mutex_
  std::map<std::string, std::shared_ptr<EndpointStatus>> statuses_;
  std::size_t endpoint_count_ = 0;  // from SetEndpoints; 0: statuses_.size()
  bool endpoints_set_ = false;
  std::uint64_t ejections_ = 0;
  std::uint64_t checks_passed_ = 0;
  std::uint64_t checks_failed_ = 0;
};

// The node's ServiceHealth per service name, kept across reloads (a service that leaves the
// config is dropped by Retain; clusters holding it keep theirs alive until they go).
class HealthRegistry {
 public:
  std::shared_ptr<ServiceHealth> For(const std::string& service);
  // The service's, or null if it has none (it left the config).
  std::shared_ptr<ServiceHealth> Find(const std::string& service) const;
  // Drops the services not in `services`.
  void Retain(const std::vector<std::string>& services);
  std::vector<std::shared_ptr<ServiceHealth>> All() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<ServiceHealth>> services_;
};

}  // namespace ferry::upstream
