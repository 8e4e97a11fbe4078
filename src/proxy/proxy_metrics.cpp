#include "proxy/proxy_metrics.hpp"

#include <cstdio>
#include <cstdlib>

#include "proxy/local_reply.hpp"
#include "server/handshake_failures.hpp"

namespace ferry::proxy {
namespace {

constexpr std::array<const char*, 5> kClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};

// Registration of Ferry's own fixed families cannot fail unless the code is wrong.
template <typename T>
T& Must(Result<T*> r) {
  if (!r) {
    std::fprintf(stderr, "metrics registration bug: %s\n", r.error().message().c_str());
    std::abort();
  }
  return **r;
}

}  // namespace

ProxyMetrics::ProxyMetrics(observability::MetricsRegistry& r)
    : downstream_active(
          Must(r.AddGauge("ferry_downstream_connections_active", "Client connections open now."))
              .Get()),
      downstream_total(
          Must(r.AddCounter("ferry_downstream_connections_total", "Client connections accepted."))
              .Get()),
      reloads(Must(r.AddCounter("ferry_config_reloads_total",
                                "Config reloads applied (SIGHUP or a change of the file)."))
                  .Get()),
      reload_failures(Must(r.AddCounter("ferry_config_reload_failures_total",
                                        "Config reloads rejected; the running config stayed."))
                          .Get()),
      tls_handshake_failures(*server::HandshakeFailures(r)),
      http2_connections(Must(r.AddCounter("ferry_http2_connections_total",
                                          "Client connections that spoke HTTP/2 (h2 or h2c)."))
                            .Get()),
      http2_streams(Must(r.AddCounter("ferry_http2_streams_total",
                                      "HTTP/2 request streams whose head arrived."))
                        .Get()),
      http2_flood_closes(
          Must(r.AddCounter("ferry_http2_flood_closes_total",
                            "HTTP/2 connections ended by a flood bound: rapid reset, "
                            "CONTINUATION, SETTINGS or control-frame ack floods."))
              .Get()),
      grpc_calls_(Must(r.AddCounter(
          "ferry_grpc_calls_total",
          "gRPC calls ended, by listener, route, method and grpc-status (\"none\": no status; "
          "methods past the label cap are \"other\").",
          {"listener", "route", "method", "grpc_status"}))),
      route_requests_(Must(r.AddCounter("ferry_http_requests_total",
                                        "Requests answered, by listener, route and status class.",
                                        {"listener", "route", "code"}))),
      route_duration_(Must(r.AddHistogram("ferry_http_request_duration_seconds",
                                          "Time from the request head to the end of the response.",
                                          {"listener", "route"}))),
      websocket_total_(Must(r.AddCounter(
          "ferry_websocket_connections_total",
          "WebSocket connections relayed (the upstream answered 101), by listener and route.",
          {"listener", "route"}))),
      websocket_active_(Must(r.AddGauge("ferry_websocket_connections_active",
                                        "WebSocket connections open now, by listener and route.",
                                        {"listener", "route"}))),
      push_connections_(
          Must(r.AddCounter("ferry_push_connections_total",
                            "Topic streams opened (SSE or WebSocket), by listener and route.",
                            {"listener", "route"}))),
      push_active_(Must(r.AddGauge("ferry_push_connections_active",
                                   "Topic streams open now, by listener and route.",
                                   {"listener", "route"}))),
      push_events_(Must(r.AddCounter("ferry_push_events_total",
                                     "Events written to topic streams, by listener and route.",
                                     {"listener", "route"}))),
      push_slow_(Must(r.AddCounter(
          "ferry_push_slow_disconnects_total",
          "Topic streams cut because the client fell behind by more than push.buffer_bytes.",
          {"listener", "route"}))),
      upstream_requests_(Must(r.AddCounter("ferry_upstream_requests_total",
                                           "Upstream responses, by service and status class.",
                                           {"service", "code"}))),
      upstream_duration_(Must(r.AddHistogram("ferry_upstream_request_duration_seconds",
                                             "Time from sending the request upstream to the end "
                                             "of its response.",
                                             {"service"}))),
      connect_failures_(
          Must(r.AddCounter("ferry_upstream_connect_failures_total",
                            "Upstream connects that failed or timed out.", {"service"}))),
      timeouts_(Must(r.AddCounter("ferry_upstream_timeouts_total",
                                  "Upstream requests that hit the route timeout.", {"service"}))),
      retries_(Must(r.AddCounter("ferry_upstream_keepalive_retries_total",
                                 "Requests sent again on a fresh connection after a pooled one "
                                 "turned out closed (the keep-alive race).",
                                 {"service"}))),
      tries_(
          Must(r.AddCounter("ferry_upstream_tries_total",
                            "Upstream tries sent: first tries, retries and hedges.", {"service"}))),
      policy_retries_(Must(r.AddCounter(
          "ferry_upstream_retries_total",
          "Retries by the route's policy, by what the try before came to (connect_failure, "
          "reset, try_timeout, or the status code).",
          {"service", "reason"}))),
      budget_exhausted_(
          Must(r.AddCounter("ferry_upstream_retry_budget_exhausted_total",
                            "Retries and hedges refused by the service's retry budget; the "
                            "try's own failure was answered.",
                            {"service"}))),
      hedges_(Must(r.AddCounter("ferry_upstream_hedges_total",
                                "Hedged tries started (no response head within hedge.after).",
                                {"service"}))),
      connections_(Must(r.AddGauge("ferry_upstream_connections",
                                   "Upstream connections open (idle and in use).", {"service"}))),
      http2_streams_(Must(r.AddCounter("ferry_upstream_http2_streams_total",
                                       "HTTP/2 streams opened to the service (one per try on an "
                                       "HTTP/2 connection; many share a connection).",
                                       {"service"}))),
      in_flight_(Must(r.AddGauge("ferry_upstream_requests_in_flight",
                                 "Upstream requests sent and not yet finished.", {"service"}))),
      local_replies_(Must(r.AddCounter("ferry_local_replies_total",
                                       "Responses Ferry made itself, by error code.", {"code"}))),
      authz_decisions_(r) {
  for (std::string_view code :
       {reply::kNoRoute, reply::kBadRequest, reply::kHeadersTooLarge, reply::kBodyTooLarge,
        reply::kRequestTimeout, reply::kUpstreamConnectFailed, reply::kBadUpstreamResponse,
        reply::kNoHealthyEndpoint, reply::kUpstreamOverloaded, reply::kUpstreamTimeout,
        reply::kInternal}) {
    known_replies_.emplace_back(std::string(code), &local_replies_.Get(code));
  }
}

RouteSeries ProxyMetrics::ForRoute(const std::string& listener, const std::string& route) {
  RouteSeries s{};
  for (std::size_t i = 0; i < kClasses.size(); ++i) {
    s.requests[i] = &route_requests_.Get(listener, route, kClasses[i]);
  }
  s.duration = &route_duration_.Get(listener, route);
  s.websocket_total = &websocket_total_.Get(listener, route);
  s.websocket_active = &websocket_active_.Get(listener, route);
  s.push_connections = &push_connections_.Get(listener, route);
  s.push_active = &push_active_.Get(listener, route);
  s.push_events = &push_events_.Get(listener, route);
  s.push_slow_disconnects = &push_slow_.Get(listener, route);
  return s;
}

ServiceSeries ProxyMetrics::ForService(const std::string& service) {
  ServiceSeries s{};
  for (std::size_t i = 0; i < kClasses.size(); ++i) {
    s.requests[i] = &upstream_requests_.Get(service, kClasses[i]);
  }
  s.duration = &upstream_duration_.Get(service);
  s.connect_failures = &connect_failures_.Get(service);
  s.timeouts = &timeouts_.Get(service);
  s.keepalive_race_retries = &retries_.Get(service);
  s.connections = &connections_.Get(service);
  s.http2_streams = &http2_streams_.Get(service);
  s.in_flight = &in_flight_.Get(service);
  s.resilience.tries = &tries_.Get(service);
  s.resilience.budget_exhausted = &budget_exhausted_.Get(service);
  s.resilience.hedges = &hedges_.Get(service);
  s.resilience.retries = &policy_retries_;
  s.resilience.service = service;  // (the caller's string: the snapshot's config key)
  return s;
}

observability::Counter& ProxyMetrics::GrpcCall(std::string_view listener, std::string_view route,
                                               std::string_view method, std::string_view status) {
  std::string_view label = "other";
  {
    const std::lock_guard<std::mutex> lock(grpc_methods_mutex_);
    auto it = grpc_methods_.find(method);
    if (it == grpc_methods_.end() && grpc_methods_.size() < kGrpcMethodLabels) {
      it = grpc_methods_.emplace(method).first;
    }
    if (it != grpc_methods_.end()) label = *it;  // (set nodes stay put)
  }
  return grpc_calls_.Get(listener, route, label, status);
}

observability::Counter& ProxyMetrics::LocalReply(std::string_view code) {
  for (auto& [name, counter] : known_replies_) {
    if (name == code) return *counter;
  }
  return local_replies_.Get(code);
}

}  // namespace ferry::proxy
