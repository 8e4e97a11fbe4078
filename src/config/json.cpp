// ToJson: the effective config as JSON, for the admin API's `GET /config`. The
// output uses the config file's own keys and units, so it loads back as an equal config.
#include <boost/json.hpp>

#include "config/config.hpp"

namespace ferry::config {
namespace {

namespace json = boost::json;

json::string Text(const Duration& d) { return json::string(FormatDuration(d)); }

std::string_view LbName(LbPolicy lb) {
  switch (lb) {
    case LbPolicy::kRoundRobin:
      return "round_robin";
    case LbPolicy::kLeastRequest:
      return "least_request";
    case LbPolicy::kRandom:
      return "random";
    case LbPolicy::kHash:
      return "hash";
  }
  return "round_robin";
}

json::object LimitsJson(const Limits& limits) {
  return {{"max_header_bytes", limits.max_header_bytes},
          {"max_headers", limits.max_headers},
          {"max_body_bytes", limits.max_body_bytes},
          {"header_read_timeout", Text(limits.header_read_timeout)},
          {"idle_timeout", Text(limits.idle_timeout)},
          {"request_timeout", Text(limits.request_timeout)}};
}

json::object MatchJson(const RouteMatch& match) {
  json::object out;
  if (match.prefix) out["prefix"] = *match.prefix;
  if (match.path) out["path"] = *match.path;
  if (match.host) out["host"] = *match.host;
  if (!match.methods.empty()) {
    json::array methods;
    for (const auto& m : match.methods) methods.emplace_back(m);
    out["methods"] = std::move(methods);
  }
  if (!match.headers.empty()) {
    json::object headers;
    for (const auto& [name, value] : match.headers) headers[name] = value;
    out["headers"] = std::move(headers);
  }
  return out;
}

json::object RouteJson(const Route& route) {
  json::object out{{"name", route.name},
                   {"match", MatchJson(route.match)},
                   {"service", route.service},
                   {"timeout", Text(route.timeout)}};
  if (route.rewrite_prefix) out["rewrite_prefix"] = *route.rewrite_prefix;
  return out;
}

json::object ServiceJson(const Service& service) {
  json::array endpoints;
  for (const auto& e : service.endpoints) endpoints.emplace_back(e.ToString());
  json::object out{{"endpoints", std::move(endpoints)},
                   {"lb", LbName(service.lb)},
                   {"connect_timeout", Text(service.connect_timeout)},
                   {"max_connections_per_endpoint", service.max_connections_per_endpoint},
                   {"pool_idle_timeout", Text(service.pool_idle_timeout)},
                   {"resolve_interval", Text(service.resolve_interval)}};
  if (service.lb == LbPolicy::kHash) {
    if (service.hash_on.kind == HashOn::Kind::kHeader) {
      out["hash_on"] = json::object{{"header", service.hash_on.header}};
    } else {
      out["hash_on"] = "client_address";
    }
  }
  return out;
}

}  // namespace

std::string ToJson(const Config& config) {
  json::array listeners;
  for (const Listener& l : config.listeners) {
    json::array routes;
    for (const Route& r : l.routes) routes.emplace_back(RouteJson(r));
    listeners.emplace_back(json::object{{"name", l.name},
                                        {"listen", l.listen.ToString()},
                                        {"limits", LimitsJson(l.limits)},
                                        {"routes", std::move(routes)}});
  }
  json::object services;
  for (const auto& [name, service] : config.services) services[name] = ServiceJson(service);
  json::object root{{"workers", config.workers},
                    {"drain_time", Text(config.drain_time)},
                    {"admin", json::object{{"listen", config.admin.listen.ToString()}}},
                    {"access_log", json::object{{"enabled", config.access_log.enabled},
                                                {"path", config.access_log.path}}},
                    {"listeners", std::move(listeners)},
                    {"services", std::move(services)}};
  return json::serialize(root);
}

}  // namespace ferry::config
