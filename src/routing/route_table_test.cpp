#include "routing/route_table.hpp"

#include <gtest/gtest.h>

namespace ferry::routing {
namespace {

http::RequestHead Request(std::string method, std::string target, std::string host = "x") {
  http::RequestHead r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.headers.Add("Host", host);
  return r;
}

config::Route Prefix(std::string prefix, std::string service) {
  config::Route r;
  r.match.prefix = std::move(prefix);
  r.service = std::move(service);
  return r;
}

TEST(RouteTable, FirstMatchWins) {
  std::vector<config::Route> routes = {Prefix("/api/catalog/", "catalog"), Prefix("/api/", "api")};
  RouteTable t(routes);
  EXPECT_EQ(t.Match(Request("GET", "/api/catalog/1")), 0u);
  EXPECT_EQ(t.Match(Request("GET", "/api/orders")), 1u);
  EXPECT_EQ(t.Match(Request("GET", "/other")), std::nullopt);
}

TEST(RouteTable, ExactPathIgnoresQuery) {
  config::Route r;
  r.match.path = "/health";
  std::vector<config::Route> routes = {r};
  RouteTable t(routes);
  EXPECT_EQ(t.Match(Request("GET", "/health?x=1")), 0u);
  EXPECT_EQ(t.Match(Request("GET", "/healthz")), std::nullopt);
}

TEST(RouteTable, MatchesHostMethodsAndHeaders) {
  config::Route r = Prefix("/", "s");
  r.match.host = "API.example.com";
  r.match.methods = {"GET", "HEAD"};
  r.match.headers = {{"x-tenant", "blue"}};
  std::vector<config::Route> routes = {r};
  RouteTable t(routes);
  auto ok = Request("GET", "/a", "api.example.com:8080");
  ok.headers.Add("X-Tenant", "blue");
  EXPECT_EQ(t.Match(ok), 0u);
  auto wrong_method = ok;
  wrong_method.method = "POST";
  EXPECT_EQ(t.Match(wrong_method), std::nullopt);
  auto wrong_host = Request("GET", "/a", "other.example.com");
  wrong_host.headers.Add("x-tenant", "blue");
  EXPECT_EQ(t.Match(wrong_host), std::nullopt);
  auto no_header = Request("GET", "/a", "api.example.com");
  EXPECT_EQ(t.Match(no_header), std::nullopt);
}

TEST(RouteTable, APreflightMatchesACorsRouteByTheMethodItAsksAbout) {
  config::Route with_cors = Prefix("/api/", "api");
  with_cors.match.methods = {"PUT"};
  with_cors.cors = config::Cors{};
  config::Route without = Prefix("/plain/", "plain");
  without.match.methods = {"PUT"};
  std::vector<config::Route> routes = {with_cors, without};
  RouteTable t(routes);
  auto preflight = Request("OPTIONS", "/api/items");
  preflight.headers.Add("Origin", "https://app.example.com");
  preflight.headers.Add("Access-Control-Request-Method", "PUT");
  EXPECT_EQ(t.Match(preflight), 0u);
  auto other_method = preflight;
  other_method.headers.Set("access-control-request-method", "DELETE");
  EXPECT_EQ(t.Match(other_method), std::nullopt);
  // Without cors on the route, OPTIONS is just a method the route does not take.
  auto plain = preflight;
  plain.target = "/plain/items";
  EXPECT_EQ(t.Match(plain), std::nullopt);
}

TEST(RouteTable, RewritesPrefix) {
  config::Route r = Prefix("/api/catalog/", "catalog");
  r.rewrite_prefix = "/";
  EXPECT_EQ(RouteTable::RewriteTarget(r, "/api/catalog/items?page=2"), "/items?page=2");
  EXPECT_EQ(RouteTable::RewriteTarget(r, "/api/catalog/"), "/");
  r.rewrite_prefix = "/v2/";
  EXPECT_EQ(RouteTable::RewriteTarget(r, "/api/catalog/x"), "/v2/x");
  r.rewrite_prefix.reset();
  EXPECT_EQ(RouteTable::RewriteTarget(r, "/api/catalog/x"), "/api/catalog/x");
}

TEST(NormalizeHost, StripsPortAndLowercases) {
  EXPECT_EQ(NormalizeHost("API.Example.com:8080"), "api.example.com");
  EXPECT_EQ(NormalizeHost("[::1]:80"), "[::1]");
}

}  // namespace
}  // namespace ferry::routing
