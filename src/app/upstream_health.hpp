// The node's side of endpoint health: the registry of each service's ServiceHealth (outlier
// ejection and health-check verdicts, shared by the workers' clusters, kept across reloads),
// the one HealthChecker of the node, and a tick every second that notices the ejections that
// ended and publishes the metrics (ferry_upstream_ejections_total,
// ferry_upstream_endpoints_ejected, ferry_upstream_health_checks_total,
// ferry_upstream_endpoints_healthy).
// Thread safety: the node's main loop only (Apply, Start, Stop); registry() is safe anywhere.
#pragma once

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "config/config.hpp"
#include "observability/metrics_registry.hpp"
#include "proxy/snapshot.hpp"
#include "runtime/asio.hpp"
#include "upstream/health_checker.hpp"
#include "upstream/service_health.hpp"

namespace ferry::tls {
class ClientTlsRegistry;
}  // namespace ferry::tls

namespace ferry::app {

class UpstreamHealth {
 public:
  UpstreamHealth(asio::io_context& io, observability::MetricsRegistry& metrics);

  upstream::HealthRegistry& registry() { return registry_; }
  // The node's upstream TLS, for health checks of services with `tls:`. Must outlive this.
  void SetClientTls(const tls::ClientTlsRegistry* registry) { client_tls_ = registry; }
  // A new snapshot (start, reload, DNS change), before the workers get it: each service's
  // outlier detection (its policy's) and endpoints, and the health checks to run.
  void Apply(const config::Config& config, const proxy::Snapshot& snapshot);
  void Start();
  void Stop();
  // For GET /stats: per service, per endpoint, whether it is usable, and why not:
  // {"svc": {"10.0.0.7:8080": {"usable": false, "ejected_for_ms": 2500, "times_ejected": 1,
  //  "health_check": "fail"}}} ("health_check": "pass" or "fail" only where checks run).
  boost::json::object ToJson() const;

 private:
  void Tick();

  struct Published {
    std::shared_ptr<upstream::ServiceHealth> health;
    upstream::ServiceHealthCounts counts;
  };

  asio::io_context& io_;
  observability::MetricsRegistry& metrics_;
  observability::CounterFamily* ejections_ = nullptr;
  observability::GaugeFamily* ejected_ = nullptr;
  observability::CounterFamily* checks_ = nullptr;
  observability::GaugeFamily* healthy_ = nullptr;
  upstream::HealthRegistry registry_;
  upstream::HealthChecker checker_;
  asio::steady_timer timer_;
  std::map<std::string, Published> published_;
  std::set<std::string> checked_;  // services with health checks
  bool stopped_ = false;
  const tls::ClientTlsRegistry* client_tls_ = nullptr;
};

}  // namespace ferry::app
