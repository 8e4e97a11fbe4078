#include "proxy/snapshot.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace ferry::proxy {
namespace {

// The built-in default policy, for a config without `policies` (made by hand in tests; the
// loader always fills in "default").
const config::Policy& DefaultPolicy() {
  static const config::Policy policy = [] {
    config::Policy p;
    p.name = "default";
    return p;
  }();
  return policy;
}

}  // namespace

std::shared_ptr<const Snapshot> BuildSnapshot(std::shared_ptr<const config::Config> config,
                                              upstream::Resolver& resolver, ProxyMetrics& metrics,
                                              std::uint64_t generation,
                                              std::span<const FilterFactory> filters,
                                              resilience::ServiceRegistry* services) {
  auto snap = std::make_shared<Snapshot>();
  snap->config = config;
  snap->generation = generation;
  for (const auto& [name, service] : config->services) {
    ServicePlan plan;
    plan.config = &service;
    plan.series = metrics.ForService(name);
    plan.state =
        services != nullptr ? services->Get(name) : std::make_shared<resilience::ServiceState>();
    for (const config::Address& a : service.endpoints) {
      auto ips = resolver.Resolve(a.host);
      if (!ips) {
        spdlog::warn("service {}: cannot resolve {}: {}", name, a.host, ips.error().message());
        continue;
      }
      for (const std::string& ip : *ips) {
        config::Address resolved{ip, a.port};
        plan.endpoints.push_back({resolved.ToString(), ip, a.port, a.host});
      }
    }
    std::sort(plan.endpoints.begin(), plan.endpoints.end(),
              [](const auto& x, const auto& y) { return x.id < y.id; });
    plan.endpoints.erase(std::unique(plan.endpoints.begin(), plan.endpoints.end(),
                                     [](const auto& x, const auto& y) { return x.id == y.id; }),
                         plan.endpoints.end());
    snap->services.emplace(name, std::move(plan));
  }
  for (const config::Listener& l : config->listeners) {
    ListenerPlan plan;
    plan.config = &l;
    plan.routes = routing::RouteTable(l.routes);
    plan.route_plans.reserve(l.routes.size());
    for (const config::Route& r : l.routes) {
      RoutePlan& route = plan.route_plans.emplace_back();
      route.series = metrics.ForRoute(l.name, r.name);
      auto it = snap->services.find(r.service);
      route.service = it == snap->services.end() ? nullptr : &it->second;
      route.filters = BuildFilterChain(r, *config, filters);
      auto policy = config->policies.find(r.policy);
      route.policy = policy != config->policies.end() ? &policy->second : &DefaultPolicy();
    }
    snap->listeners.emplace(l.name, std::move(plan));
  }
  return snap;
}

bool SameEndpoints(const Snapshot& a, const Snapshot& b) {
  if (a.services.size() != b.services.size()) return false;
  for (const auto& [name, plan] : a.services) {
    auto it = b.services.find(name);
    if (it == b.services.end() || it->second.endpoints.size() != plan.endpoints.size())
      return false;
    for (std::size_t i = 0; i < plan.endpoints.size(); ++i) {
      if (plan.endpoints[i].id != it->second.endpoints[i].id) return false;
    }
  }
  return true;
}

}  // namespace ferry::proxy
