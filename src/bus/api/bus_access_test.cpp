#include "bus/api/bus_access.hpp"

#include <gtest/gtest.h>

#include "access/api_key_check.hpp"
#include "access/authz_metrics.hpp"
#include "bus/api/bus_service_impl.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::bus {
namespace {

http::RequestHead Request(std::string method, std::string target, std::string key = "") {
  http::RequestHead r;
  r.method = std::move(method);
  r.target = std::move(target);
  if (!key.empty()) r.headers.Add("x-api-key", key);
  return r;
}

std::string_view Op(std::string method, std::string target) {
  static http::RequestHead kept;  // BusOperation's answer is a literal; the head may go
  kept = Request(std::move(method), std::move(target));
  return BusOperation(kept);
}

TEST(BusOperation, EachPathAndMethodIsOneOperation) {
  EXPECT_EQ(Op("POST", "/v1/queues/orders/messages"), "bus.publish");
  EXPECT_EQ(Op("POST", "/v1/topics/orders/events"), "bus.publish");
  EXPECT_EQ(Op("GET", "/v1/queues/orders/messages?max=10"), "bus.consume");
  EXPECT_EQ(Op("POST", "/v1/queues/orders/ack"), "bus.consume");
  EXPECT_EQ(Op("POST", "/v1/queues/orders/nack"), "bus.consume");
  EXPECT_EQ(Op("POST", "/v1/queues/orders/extend"), "bus.consume");
  EXPECT_EQ(Op("GET", "/v1/queues/orders/dead-letters"), "bus.consume");
  EXPECT_EQ(Op("GET", "/v1/topics/t/subscriptions/s/messages"), "bus.consume");
  EXPECT_EQ(Op("POST", "/v1/topics/t/subscriptions/s/ack"), "bus.consume");
  EXPECT_EQ(Op("POST", "/v1/queues/orders/dead-letters/replay"), "bus.replay");
  EXPECT_EQ(Op("POST", "/v1/topics/t/subscriptions/s/dead-letters/replay"), "bus.replay");
  EXPECT_EQ(Op("POST", "/v1/topics/t/subscriptions/s/replay"), "bus.replay");
  EXPECT_EQ(Op("GET", "/v1/queues"), "bus.manage");
  EXPECT_EQ(Op("GET", "/v1/queues/orders"), "bus.manage");
  EXPECT_EQ(Op("PUT", "/v1/topics/t/subscriptions/s"), "bus.manage");
  EXPECT_EQ(Op("DELETE", "/v1/topics/t/subscriptions/s"), "bus.manage");
  EXPECT_EQ(Op("GET", "/v1/topics/t/subscriptions"), "bus.manage");
}

std::shared_ptr<const config::Config> Load(const std::string& extra) {
  const std::string yaml =
      "bus:\n"
      "  data_dir: /tmp/unused\n"
      "  api:\n"
      "    api_keys:\n"
      "      keys:\n"
      "        - {name: orders-svc, sha256: " +
      access::Sha256Hex("k-orders") +
      "}\n"
      "        - {name: audit, sha256: " +
      access::Sha256Hex("k-audit") + "}\n" + extra;
  auto config = config::LoadString(yaml);
  EXPECT_TRUE(config) << (config ? "" : config.error().message());
  return config ? *config : nullptr;
}

TEST(BusAccess, ApiKeysAreNeededForEveryRequest) {
  auto config = Load("");
  const BusAccess access(*config, nullptr);
  EXPECT_FALSE(access.open());
  auto missing = access.Admit(Request("GET", "/v1/queues"), "", 0);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 401);
  EXPECT_NE(missing->body.find("api_key_missing"), std::string::npos);
  EXPECT_EQ(missing->www_authenticate, "ApiKey header=\"x-api-key\"");
  auto wrong = access.Admit(Request("GET", "/v1/queues", "k-nope"), "", 0);
  ASSERT_TRUE(wrong);
  EXPECT_NE(wrong->body.find("api_key_invalid"), std::string::npos);
  EXPECT_FALSE(access.Admit(Request("GET", "/v1/queues", "k-audit"), "", 0));
}

TEST(BusAccess, RulesDecidePerOperationAndCount) {
  auto config = Load(
      "authorization:\n"
      "  rules:\n"
      "    - allow: {routes: [bus.publish], callers: [orders-svc], paths: "
      "['/v1/topics/orders/*']}\n"
      "    - allow: {routes: [bus.consume, bus.replay], callers: [audit]}\n");
  observability::MetricsRegistry registry(1);
  auto* family = access::RegisterAuthzDecisions(registry);
  const BusAccess access(*config, family);
  EXPECT_FALSE(access.Admit(Request("POST", "/v1/topics/orders/events", "k-orders"), "", 0));
  auto other_topic = access.Admit(Request("POST", "/v1/topics/audit/events", "k-orders"), "", 0);
  ASSERT_TRUE(other_topic);
  EXPECT_EQ(other_topic->status, 403);
  EXPECT_NE(other_topic->body.find("\"forbidden\""), std::string::npos);
  EXPECT_TRUE(access.Admit(Request("POST", "/v1/topics/orders/events", "k-audit"), "", 0));
  EXPECT_FALSE(access.Admit(Request("GET", "/v1/queues/jobs/messages", "k-audit"), "", 0));
  EXPECT_TRUE(access.Admit(Request("GET", "/v1/queues/jobs/messages", "k-orders"), "", 0));
  // bus.manage: no rule names it and none names no route, so it is not checked.
  EXPECT_FALSE(access.Admit(Request("GET", "/v1/queues", "k-orders"), "", 0));
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find(R"(ferry_authz_decisions_total{route="bus.publish",decision="allow"} 1)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(ferry_authz_decisions_total{route="bus.publish",decision="deny"} 2)"),
            std::string::npos)
      << text;
}

TEST(BusAccess, AMeshCallerIsMatchedByItsSpiffeId) {
  auto config = config::LoadString(
      "bus: {data_dir: /tmp/unused}\n"
      "authorization:\n"
      "  rules:\n"
      "    - allow: {routes: [bus.publish], callers: ['spiffe://shop.internal/service/orders']}\n");
  ASSERT_TRUE(config) << config.error().message();
  const BusAccess access(**config, nullptr);
  EXPECT_FALSE(access.Admit(Request("POST", "/v1/queues/q/messages"),
                            "spiffe://shop.internal/service/orders", 0));
  auto other = access.Admit(Request("POST", "/v1/queues/q/messages"),
                            "spiffe://shop.internal/service/web", 0);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 403);
}

TEST(BusAccess, NoKeysAndNoRulesIsOpen) {
  auto config = config::LoadString("bus: {data_dir: /tmp/unused}\n");
  ASSERT_TRUE(config);
  const BusAccess access(**config, nullptr);
  EXPECT_TRUE(access.open());
  EXPECT_FALSE(access.Admit(Request("POST", "/v1/queues/q/messages"), "", 0));
}

}  // namespace
}  // namespace ferry::bus
