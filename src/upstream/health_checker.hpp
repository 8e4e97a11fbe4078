// Active health checks, one checker per node (not per worker): for each service with a health
// block, every `interval` it GETs `path` on each endpoint (through a one-endpoint Cluster, so
// connections are kept alive between checks), a 2xx within `timeout` is a pass, and the result
// goes to the service's ServiceHealth, which every worker's Pick reads.
// Apply() takes the node's current view (after start, a reload or a DNS change): new services
// and endpoints start being checked, removed ones stop, a changed health block applies from the
// next round; a service that loses its health block has its verdicts cleared.
// Thread safety: the event loop `io` only (the node's main loop). Ownership: each service's
// checking loop holds its own state; the loops and their checks are tasks of the checker's
// TaskGroup, so Stop() (or the destructor) cancels them all, checks in flight included.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "runtime/asio.hpp"
#include "runtime/task_group.hpp"
#include "upstream/endpoints.hpp"
#include "upstream/pool_settings.hpp"
#include "upstream/service_health.hpp"

namespace ferry::upstream {

class HealthChecker {
 public:
  struct Target {
    std::string service;
    config::HealthCheck check;
    std::vector<ResolvedAddress> endpoints;
    std::shared_ptr<ServiceHealth> health;
    std::shared_ptr<tls::ClientTls> tls;  // the service's upstream TLS; null: plain TCP
    config::UpstreamProtocol protocol = config::UpstreamProtocol::kHttp1;  // as the proxy's
  };

  explicit HealthChecker(asio::io_context& io) : io_(io), tasks_(io.get_executor()) {}
  ~HealthChecker() { Stop(); }
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The services to check from now on (the others stop).
  void Apply(std::vector<Target> targets);
  void Stop();

  struct ServiceChecker;  // health_checker.cpp

 private:
  asio::io_context& io_;
  runtime::TaskGroup tasks_;  // the checking loops and the checks in flight
  std::map<std::string, std::shared_ptr<ServiceChecker>> services_;
};

}  // namespace ferry::upstream
