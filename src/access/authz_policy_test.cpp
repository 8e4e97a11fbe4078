#include "access/authz_policy.hpp"

#include <gtest/gtest.h>

namespace ferry::access {
namespace {

config::AuthzRule Rule(bool allow) {
  config::AuthzRule rule;
  rule.allow = allow;
  return rule;
}

AuthzRequest Request(std::string_view method = "GET", std::string_view path = "/orders/1") {
  AuthzRequest r;
  r.method = method;
  r.path = path;
  return r;
}

TEST(MatchesPattern, ExactOrTrailingStarPrefix) {
  EXPECT_TRUE(MatchesPattern("/orders", "/orders"));
  EXPECT_FALSE(MatchesPattern("/orders", "/orders/1"));
  EXPECT_TRUE(MatchesPattern("/orders/*", "/orders/1"));
  EXPECT_FALSE(MatchesPattern("/orders/*", "/orders"));
  EXPECT_TRUE(MatchesPattern("*", "anything"));
  EXPECT_TRUE(MatchesPattern("spiffe://shop/service/*", "spiffe://shop/service/web"));
}

TEST(AuthzPolicy, OnlyRulesNamingTheRouteOrNoRouteApply) {
  config::Authorization a;
  config::AuthzRule orders = Rule(true);
  orders.routes = {"orders"};
  a.rules = {orders};
  EXPECT_TRUE(AuthzPolicy(a, "orders").applies());
  EXPECT_FALSE(AuthzPolicy(a, "catalog").applies());
  a.rules.push_back(Rule(false));  // names no route: every route
  EXPECT_TRUE(AuthzPolicy(a, "catalog").applies());
}

TEST(AuthzPolicy, NoMatchIsTheDefaultDenyUnlessAllow) {
  config::Authorization a;
  config::AuthzRule rule = Rule(true);
  rule.callers = {"billing"};
  a.rules = {rule};
  const AuthzDecision denied = AuthzPolicy(a, "r").Decide(Request());
  EXPECT_FALSE(denied.allow);
  EXPECT_EQ(denied.rule, -1);
  EXPECT_EQ(AuthzPolicy::Describe(denied), "no rule matched (default deny)");
  a.default_allow = true;
  EXPECT_TRUE(AuthzPolicy(a, "r").Decide(Request()).allow);
}

TEST(AuthzPolicy, FirstMatchingRuleDecides) {
  config::Authorization a;
  config::AuthzRule deny_delete = Rule(false);
  deny_delete.methods = {"DELETE"};
  config::AuthzRule allow_all = Rule(true);
  a.rules = {deny_delete, allow_all};
  const AuthzPolicy policy(a, "r");
  const AuthzDecision del = policy.Decide(Request("DELETE"));
  EXPECT_FALSE(del.allow);
  EXPECT_EQ(del.rule, 0);
  EXPECT_EQ(AuthzPolicy::Describe(del), "rule 0 (deny)");
  const AuthzDecision get = policy.Decide(Request("GET"));
  EXPECT_TRUE(get.allow);
  EXPECT_EQ(get.rule, 1);
}

TEST(AuthzPolicy, RuleIndexesCountEveryRuleOfTheBlock) {
  config::Authorization a;
  config::AuthzRule elsewhere = Rule(false);
  elsewhere.routes = {"other"};
  a.rules = {elsewhere, Rule(true)};
  EXPECT_EQ(AuthzPolicy(a, "r").Decide(Request()).rule, 1);
}

TEST(AuthzPolicy, CallersMatchTheMeshPeerOrTheApiKeyName) {
  config::Authorization a;
  config::AuthzRule rule = Rule(true);
  rule.callers = {"spiffe://shop.internal/service/web", "partner-*"};
  a.rules = {rule};
  const AuthzPolicy policy(a, "r");
  AuthzRequest mesh = Request();
  mesh.peer = "spiffe://shop.internal/service/web";
  EXPECT_TRUE(policy.Decide(mesh).allow);
  AuthzRequest other_peer = Request();
  other_peer.peer = "spiffe://shop.internal/service/webshop";
  EXPECT_FALSE(policy.Decide(other_peer).allow);
  AuthzRequest key = Request();
  key.api_key = "partner-acme";
  EXPECT_TRUE(policy.Decide(key).allow);
  AuthzRequest anonymous = Request();
  EXPECT_FALSE(policy.Decide(anonymous).allow);
}

TEST(AuthzPolicy, PathsAndMethodsMustBothMatch) {
  config::Authorization a;
  config::AuthzRule rule = Rule(true);
  rule.paths = {"/orders/*", "/health"};
  rule.methods = {"GET", "HEAD"};
  a.rules = {rule};
  const AuthzPolicy policy(a, "r");
  EXPECT_TRUE(policy.Decide(Request("GET", "/orders/7")).allow);
  EXPECT_TRUE(policy.Decide(Request("HEAD", "/health")).allow);
  EXPECT_FALSE(policy.Decide(Request("POST", "/orders/7")).allow);
  EXPECT_FALSE(policy.Decide(Request("GET", "/healthz")).allow);
}

TEST(AuthzPolicy, ClaimsMustAllBeHeldAnArrayClaimByAnyElement) {
  config::Authorization a;
  config::AuthzRule rule = Rule(true);
  rule.claims = {{"scope", "orders:write"}, {"tenant", "acme"}};
  a.rules = {rule};
  const AuthzPolicy policy(a, "r");
  std::vector<std::pair<std::string, std::string>> claims = {
      {"sub", "alice"}, {"scope", "orders:read"}, {"scope", "orders:write"}, {"tenant", "acme"}};
  AuthzRequest with = Request();
  with.claims = &claims;
  EXPECT_TRUE(policy.Decide(with).allow);
  claims.pop_back();  // no tenant
  EXPECT_FALSE(policy.Decide(with).allow);
  EXPECT_FALSE(policy.Decide(Request()).allow);  // no JWT at all
}

TEST(AuthzPolicy, ACopyDecidesLikeTheOriginal) {
  config::Authorization a;
  config::AuthzRule rule = Rule(false);
  rule.methods = {"DELETE"};
  a.rules = {rule};
  a.default_allow = true;
  auto original = std::make_unique<AuthzPolicy>(a, "r");
  const AuthzPolicy copy = *original;
  original.reset();
  EXPECT_FALSE(copy.Decide(Request("DELETE")).allow);
  EXPECT_TRUE(copy.Decide(Request("GET")).allow);
}

}  // namespace
}  // namespace ferry::access
