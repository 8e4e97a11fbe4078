// The metric families of the proxy path, registered once per process, and the per-route and
// per-service series that a config snapshot resolves ahead of time so that the request path
// never looks a series up by name.
// Thread safety: Register/For* run on the main thread (start-up, reload); the series they return
// are written by workers, each in its own slot.
#pragma once

#include <array>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "access/authz_metrics.hpp"
#include "observability/metrics_registry.hpp"
#include "resilience/client_metrics.hpp"

namespace ferry::proxy {

// Index of a status class in the per-class series arrays: 1xx..5xx -> 0..4.
inline std::size_t StatusClass(int status) {
  const int c = status / 100 - 1;
  return c < 0 || c > 4 ? 4 : static_cast<std::size_t>(c);
}

struct RouteSeries {
  std::array<observability::Counter*, 5> requests;  // by status class
  observability::Histogram* duration;
  observability::Counter* websocket_total;  // upgraded connections (tunnels) opened
  observability::Gauge* websocket_active;   // tunnels open now
  // A topic route's streams (SSE and WebSocket): opened, open now, events written, and
  // clients cut for falling behind by more than push.buffer_bytes.
  observability::Counter* push_connections;
  observability::Gauge* push_active;
  observability::Counter* push_events;
  observability::Counter* push_slow_disconnects;
};

struct ServiceSeries {
  std::array<observability::Counter*, 5> requests;  // upstream responses by status class
  observability::Histogram* duration;               // request sent to response end
  observability::Counter* connect_failures;
  observability::Counter* timeouts;
  observability::Counter* keepalive_race_retries;
  observability::Gauge* connections;      // open upstream connections
  observability::Counter* http2_streams;  // HTTP/2 streams opened to the service
  observability::Gauge* in_flight;
  resilience::ClientMetrics resilience;  // tries, retries, budget refusals, hedges
};

class ProxyMetrics {
 public:
  explicit ProxyMetrics(observability::MetricsRegistry& registry);

  RouteSeries ForRoute(const std::string& listener, const std::string& route);
  ServiceSeries ForService(const std::string& service);
  // A local reply Ferry made itself (no_route, bad_request, ...), by its stable code. The codes
  // of local_reply.hpp are resolved up front; another code takes the registry lock once.
  observability::Counter& LocalReply(std::string_view code);
  // A gRPC call's end (ferry_grpc_calls_total), by listener, route, method
  // ("/package.Service/Method") and grpc-status (its number; "none" when the call ended without
  // one). Methods are labels up to kGrpcMethodLabels distinct ones per process; later ones are
  // counted as "other" (a client chooses the path: it must not choose the series count).
  observability::Counter& GrpcCall(std::string_view listener, std::string_view route,
                                   std::string_view method, std::string_view status);
  static constexpr std::size_t kGrpcMethodLabels = 200;

  observability::Gauge& downstream_active;         // open client connections
  observability::Counter& downstream_total;        // accepted client connections
  observability::Counter& reloads;                 // config reloads applied
  observability::Counter& reload_failures;         // reloads rejected (the old config stayed)
  observability::Counter& tls_handshake_failures;  // client TLS handshakes failed or timed out
  observability::Counter& http2_connections;       // client connections that spoke HTTP/2
  observability::Counter& http2_streams;           // HTTP/2 request streams (heads received)
  observability::Counter& http2_flood_closes;      // HTTP/2 connections ended by a flood bound

 private:
  observability::CounterFamily& grpc_calls_;
  std::mutex grpc_methods_mutex_;
  std::set<std::string, std::less<>> grpc_methods_;  // the method labels given out
  observability::CounterFamily& route_requests_;
  observability::HistogramFamily& route_duration_;
  observability::CounterFamily& websocket_total_;
  observability::GaugeFamily& websocket_active_;
  observability::CounterFamily& push_connections_;
  observability::GaugeFamily& push_active_;
  observability::CounterFamily& push_events_;
  observability::CounterFamily& push_slow_;
  observability::CounterFamily& upstream_requests_;
  observability::HistogramFamily& upstream_duration_;
  observability::CounterFamily& connect_failures_;
  observability::CounterFamily& timeouts_;
  observability::CounterFamily& retries_;
  observability::CounterFamily& tries_;
  observability::CounterFamily& policy_retries_;
  observability::CounterFamily& budget_exhausted_;
  observability::CounterFamily& hedges_;
  observability::GaugeFamily& connections_;
  observability::CounterFamily& http2_streams_;
  observability::GaugeFamily& in_flight_;
  observability::CounterFamily& local_replies_;
  std::vector<std::pair<std::string, observability::Counter*>> known_replies_;
  // ferry_authz_decisions_total, the node's while these metrics live: the authorization
  // filters' factories find it (access/authz_metrics.hpp).
  access::NodeAuthzDecisions authz_decisions_;
};

}  // namespace ferry::proxy
