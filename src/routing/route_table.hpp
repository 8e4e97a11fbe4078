// The routes of one listener, compiled from config for matching on the request path.
// First match wins, in config order. Immutable once built; shared by all workers through the
// config snapshot, so Match() is const and lock-free.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "http/message.hpp"

namespace ferry::routing {

class RouteTable {
 public:
  RouteTable() = default;
  explicit RouteTable(const std::vector<config::Route>& routes);

  // Index of the first route matching the request, or nullopt (404). A CORS preflight
  // (OPTIONS with Origin and Access-Control-Request-Method) matches a route with cors whose
  // methods hold the method it asks about.
  std::optional<std::size_t> Match(const http::RequestHead& request) const;
  const config::Route& route(std::size_t index) const { return *routes_[index].route; }
  std::size_t size() const { return routes_.size(); }

  // The upstream target after the route's rewrite: "/api/catalog/items?x" with prefix
  // "/api/catalog/" and rewrite_prefix "/" becomes "/items?x".
  static std::string RewriteTarget(const config::Route& route, std::string_view target);

 private:
  struct Compiled {
    const config::Route* route;
    std::string host;  // lowercase, empty = any
  };
  std::vector<Compiled> routes_;
};

// The Host header's name part, lowercased, without a port: "API.Example.com:8080" ->
// "api.example.com".
std::string NormalizeHost(std::string_view host);

}  // namespace ferry::routing
