// One endpoint of a cluster (an "ip:port" of a service): its pool of connections, its health as
// seen by this worker's requests, and its node-wide status (outlier ejection, health checks:
// service_health.hpp), shared with the other workers' Endpoint of the same id.
// Ownership: shared: the cluster holds its current endpoints, and a request in flight holds
// its own, so a re-resolution may drop an endpoint while requests on it finish.
// Thread safety: the event loop of its cluster only.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "upstream/endpoints.hpp"
#include "upstream/stream_pool.hpp"

namespace ferry::upstream {

struct EndpointStatus;  // service_health.hpp

struct EndpointHealth {
  using TimePoint = std::chrono::steady_clock::time_point;
  std::uint32_t in_flight = 0;             // requests sent and not finished (body included)
  std::uint32_t consecutive_failures = 0;  // since the last success
  std::uint64_t successes = 0;             // responses read to their end (any status)
  std::uint64_t failures = 0;  // connect failures, I/O failures (deadline included), bad responses
  TimePoint last_failure{};    // of the latest failure (epoch: never)

  void Succeeded() {
    ++successes;
    consecutive_failures = 0;
  }
  void Failed(TimePoint now) {
    ++failures;
    ++consecutive_failures;
    last_failure = now;
  }
};

struct Endpoint {
  Endpoint(ResolvedAddress a, std::shared_ptr<StreamPool> p)
      : id(a.id), address(std::move(a)), pool(std::move(p)) {}
  std::string id;  // "10.0.0.7:8080"
  ResolvedAddress address;
  std::shared_ptr<StreamPool> pool;
  EndpointHealth health;
  // Node-wide (ejection, health checks); null when the cluster has no ServiceHealth.
  std::shared_ptr<EndpointStatus> status;
};

// Counts one request in flight on an endpoint for as long as it lives (movable: the response
// body reader takes it over).
class InFlight {
 public:
  InFlight() = default;
  explicit InFlight(std::shared_ptr<Endpoint> endpoint) : endpoint_(std::move(endpoint)) {
    if (endpoint_) ++endpoint_->health.in_flight;
  }
  InFlight(InFlight&& other) noexcept = default;
  InFlight& operator=(InFlight&& other) noexcept {
    if (this != &other) {
      End();
      endpoint_ = std::move(other.endpoint_);
    }
    return *this;
  }
  ~InFlight() { End(); }
  Endpoint* endpoint() const { return endpoint_.get(); }
  void End() {
    if (endpoint_) --endpoint_->health.in_flight;
    endpoint_.reset();
  }

 private:
  std::shared_ptr<Endpoint> endpoint_;
};

}  // namespace ferry::upstream
