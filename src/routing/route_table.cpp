#include "routing/route_table.hpp"

namespace ferry::routing {

std::string NormalizeHost(std::string_view host) {
  if (!host.empty() && host.front() == '[') {
    std::size_t close = host.find(']');
    host = host.substr(0, close == std::string_view::npos ? host.size() : close + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  std::string out(host);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

RouteTable::RouteTable(const std::vector<config::Route>& routes) {
  routes_.reserve(routes.size());
  for (const config::Route& r : routes) {
    routes_.push_back(Compiled{&r, r.match.host ? NormalizeHost(*r.match.host) : std::string()});
  }
}

std::optional<std::size_t> RouteTable::Match(const http::RequestHead& request) const {
  const std::string_view path = request.path();
  std::string host;  // computed once, only if some route matches on host
  bool host_ready = false;
  for (std::size_t i = 0; i < routes_.size(); ++i) {
    const Compiled& c = routes_[i];
    const config::RouteMatch& m = c.route->match;
    if (m.path && path != *m.path) continue;
    if (m.prefix && !path.starts_with(*m.prefix)) continue;
    if (!m.methods.empty()) {
      // A CORS preflight asks about the method in Access-Control-Request-Method: on a route
      // with cors it matches as that method would, so the route's cors filter answers it.
      std::string_view method = request.method;
      if (c.route->cors && method == "OPTIONS" && request.headers.Has("origin")) {
        method = request.headers.Get("access-control-request-method").value_or(method);
      }
      bool any = false;
      for (const std::string& allowed : m.methods) any = any || allowed == method;
      if (!any) continue;
    }
    if (!c.host.empty()) {
      if (!host_ready) {
        host = NormalizeHost(request.headers.Get("host").value_or(""));
        host_ready = true;
      }
      if (host != c.host) continue;
    }
    bool headers_ok = true;
    for (const auto& [name, value] : m.headers) {
      auto v = request.headers.Get(name);
      if (!v || *v != value) {
        headers_ok = false;
        break;
      }
    }
    if (!headers_ok) continue;
    return i;
  }
  return std::nullopt;
}

std::string RouteTable::RewriteTarget(const config::Route& route, std::string_view target) {
  if (!route.rewrite_prefix) return std::string(target);
  std::string_view matched;
  if (route.match.prefix) {
    matched = *route.match.prefix;
  } else if (route.match.path) {
    matched = *route.match.path;
  }
  std::string out = *route.rewrite_prefix;
  std::string_view rest = target.substr(std::min(matched.size(), target.size()));
  // "/" + "/items" must not become "//items".
  if (!out.empty() && out.back() == '/' && rest.starts_with('/')) rest.remove_prefix(1);
  out.append(rest);
  if (out.empty() || (out.front() != '/')) out.insert(out.begin(), '/');
  return out;
}

}  // namespace ferry::routing
