// A config snapshot compiled for the request path: route tables, each route's filter chain,
// resolved endpoints and the metric series of every route and service. Built on the main thread at
// start, on reload and after DNS changes; then immutable and shared by all workers (each worker
// swaps its pointer between requests). No Asio here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/filter_registry.hpp"
#include "proxy/proxy_metrics.hpp"
#include "resilience/service_state.hpp"
#include "routing/route_table.hpp"
#include "upstream/endpoints.hpp"
#include "upstream/resolver.hpp"

namespace ferry::proxy {

// One resolved address of a service: id "127.0.0.1:7001" (unique within the service), the
// literal ip to connect to, the port. The upstream client's own type, so a worker hands the
// snapshot's list to its Cluster as it is.
using ResolvedEndpoint = upstream::ResolvedAddress;

struct ServicePlan {
  const config::Service* config = nullptr;
  std::vector<ResolvedEndpoint> endpoints;  // sorted by id; may be empty (503)
  ServiceSeries series;
  // The node's per-service resilience state (retry budget, ...): the same object across
  // reloads, shared by every worker.
  std::shared_ptr<resilience::ServiceState> state;
};

struct RoutePlan {
  RouteSeries series;
  const ServicePlan* service = nullptr;    // null if the route's service is not configured
  const config::Policy* policy = nullptr;  // the route's effective policy (never null)
  FilterChain filters;                     // built from the route's config (filter_registry.hpp)
};

struct ListenerPlan {
  const config::Listener* config = nullptr;
  routing::RouteTable routes;
  std::vector<RoutePlan> route_plans;  // indexed like routes
};

struct Snapshot {
  std::shared_ptr<const config::Config> config;
  std::map<std::string, ListenerPlan> listeners;
  std::map<std::string, ServicePlan> services;
  std::uint64_t generation = 0;
};

// Resolves every endpoint (blocking: call off the event loops) into plans. A name that does
// not resolve leaves its service with the endpoints that did, and is logged; the service
// answers 503 while it has none. (The node's resolver is a LastGoodResolver: a name that
// resolved once keeps its last addresses when it stops resolving.)
// Each route's chain comes from `filters` (the built-in factories but in tests). Each service's
// resilience state comes from `services` (the node's registry; null: new ones, for tests).
std::shared_ptr<const Snapshot> BuildSnapshot(
    std::shared_ptr<const config::Config> config, upstream::Resolver& resolver,
    ProxyMetrics& metrics, std::uint64_t generation,
    std::span<const FilterFactory> filters = BuiltinFilters(),
    resilience::ServiceRegistry* services = nullptr);

// True if the two snapshots resolve every service to the same endpoints.
bool SameEndpoints(const Snapshot& a, const Snapshot& b);

}  // namespace ferry::proxy
