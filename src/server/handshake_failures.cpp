#include "server/handshake_failures.hpp"

#include "observability/metrics_registry.hpp"

namespace ferry::server {

observability::Counter* HandshakeFailures(observability::MetricsRegistry& registry) {
  auto family = registry.AddCounter(
      "ferry_tls_handshake_failures_total",
      "Client TLS handshakes that failed or timed out, on listeners, the admin API and the bus "
      "API.");
  return family ? &(*family)->Get() : nullptr;
}

}  // namespace ferry::server
