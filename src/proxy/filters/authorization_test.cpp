#include "proxy/filters/authorization.hpp"

#include <gtest/gtest.h>

#include "access/authz_metrics.hpp"
#include "proxy/filters/test_exchange.hpp"

namespace ferry::proxy::filters {
namespace {

using Exchange = TestExchange;

// authorization: {rules: [deny DELETE, allow the web service and partner keys on orders]}
config::Config Config() {
  config::Config config;
  config::Authorization a;
  config::AuthzRule deny;
  deny.allow = false;
  deny.methods = {"DELETE"};
  config::AuthzRule allow;
  allow.routes = {"orders"};
  allow.callers = {"spiffe://shop.internal/service/web", "partner-*"};
  config::AuthzRule admins;
  admins.routes = {"orders"};
  admins.claims = {{"role", "admin"}};
  a.rules = {deny, allow, admins};
  config.authorization = a;
  return config;
}

config::Route Orders() {
  config::Route route;
  route.name = "orders";
  return route;
}

// One request on `filter` by `caller`.
std::unique_ptr<Exchange> Call(const Filter& filter, const CallerIdentity& caller,
                               std::string method = "GET") {
  auto e = std::make_unique<Exchange>();
  e->head.method = std::move(method);
  e->head.target = "/orders/7?x=1";
  e->caller = caller;
  e->verdict = filter.OnRequest(e->context);
  return e;
}

TEST(AuthorizationFilter, AnAllowedMeshCallerGoesOn) {
  auto filter = MakeAuthorization(Orders(), Config());
  ASSERT_NE(filter, nullptr);
  CallerIdentity web;
  web.peer = "spiffe://shop.internal/service/web";
  EXPECT_EQ(Call(*filter, web)->verdict, Verdict::kContinue);
}

TEST(AuthorizationFilter, AnotherMeshCallerGets403Forbidden) {
  auto filter = MakeAuthorization(Orders(), Config());
  CallerIdentity batch;
  batch.peer = "spiffe://shop.internal/service/batch";
  auto e = Call(*filter, batch);
  ASSERT_EQ(e->verdict, Verdict::kReply);
  EXPECT_EQ(e->reply.status, 403);
  EXPECT_EQ(e->reply.code, "forbidden");
  EXPECT_NE(e->reply.body.find("\"code\":\"forbidden\""), std::string::npos);
  EXPECT_NE(e->reply.body.find("\"request_id\":\"rid-1\""), std::string::npos);
}

TEST(AuthorizationFilter, ApiKeyCallersAndTheFirstRuleThatMatches) {
  auto filter = MakeAuthorization(Orders(), Config());
  CallerIdentity acme;
  acme.api_key = "partner-acme";
  EXPECT_EQ(Call(*filter, acme)->verdict, Verdict::kContinue);
  EXPECT_EQ(Call(*filter, acme, "DELETE")->reply.status, 403);  // rule 0 comes first
}

TEST(AuthorizationFilter, ClaimsCountOnlyFromAVerifiedJwt) {
  auto filter = MakeAuthorization(Orders(), Config());
  CallerIdentity admin;
  admin.claims = {{"sub", "alice"}, {"role", "admin"}};
  EXPECT_EQ(Call(*filter, admin)->verdict, Verdict::kReply);  // jwt not set: not verified
  admin.jwt = true;
  EXPECT_EQ(Call(*filter, admin)->verdict, Verdict::kContinue);
}

TEST(AuthorizationFilter, RoutesNoRuleAppliesToGetNoFilter) {
  config::Config config = Config();
  config.authorization->rules.erase(config.authorization->rules.begin());  // the rule for all
  config::Route catalog;
  catalog.name = "catalog";
  EXPECT_EQ(MakeAuthorization(catalog, config), nullptr);
  EXPECT_EQ(MakeAuthorization(catalog, config::Config{}), nullptr);
}

TEST(AuthorizationFilter, EachDecisionIsCounted) {
  observability::MetricsRegistry registry(1);
  const access::NodeAuthzDecisions decisions(registry);
  auto filter = MakeAuthorization(Orders(), Config());
  CallerIdentity acme;
  acme.api_key = "partner-acme";
  Call(*filter, acme);
  Call(*filter, acme);
  Call(*filter, CallerIdentity{});
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find(R"(ferry_authz_decisions_total{route="orders",decision="allow"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(ferry_authz_decisions_total{route="orders",decision="deny"} 1)"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace ferry::proxy::filters
