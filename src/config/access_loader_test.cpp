// The access keys as the loader reads them (api_keys, cors, authorization) and as GET /config
// shows them. The refusals are the files under tests/config/invalid (config_test.cpp).
#include <gtest/gtest.h>

#include "config/load_for_test.hpp"

namespace ferry::config {
namespace {

constexpr char kHash[] = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

const std::string kService = "services:\n  s: {endpoints: [127.0.0.1:9000]}\n";

TEST(ConfigAccess, ApiKeysReadWithTheDefaultHeaderAndLowercaseHashes) {
  auto config = Load(kService + R"(
listeners:
  - name: edge
    listen: 127.0.0.1:8080
    routes:
      - service: s
        api_keys:
          keys: [{name: billing, sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08}]
)");
  ASSERT_TRUE(config);
  const auto& keys = config->listeners[0].routes[0].api_keys;
  ASSERT_TRUE(keys);
  EXPECT_EQ(keys->header, "x-api-key");
  ASSERT_EQ(keys->keys.size(), 1u);
  EXPECT_EQ(keys->keys[0].name, "billing");
  EXPECT_EQ(keys->keys[0].sha256, kHash);
}

TEST(ConfigAccess, ToJsonShowsKeyNamesButNoHashes) {
  auto config = Load(kService + R"(
listeners:
  - name: edge
    listen: 127.0.0.1:8080
    routes:
      - service: s
        api_keys: {header: X-Key, keys: [{name: billing, sha256: )" +
                     std::string(kHash) + "}]}\n");
  ASSERT_TRUE(config);
  const std::string json = ToJson(*config);
  EXPECT_NE(json.find(R"("api_keys":{"header":"x-key","keys":[{"name":"billing"}]})"),
            std::string::npos)
      << json;
  EXPECT_EQ(json.find(kHash), std::string::npos);
}

TEST(ConfigAccess, RateLimitByTheKeyHeaderIsAllowed) {
  // The rate limit runs before the api_keys filter removes the header, so it sees the key.
  auto config = Load(kService + R"(
listeners:
  - name: edge
    listen: 127.0.0.1:8080
    routes:
      - service: s
        rate_limit: {rps: 5, by: {header: x-api-key}}
        api_keys: {keys: [{name: billing, sha256: )" +
                     std::string(kHash) + "}]}\n");
  EXPECT_TRUE(config);
}

TEST(ConfigAccess, CorsDefaultsAndRoundTrip) {
  auto config = Load(kService + R"(
listeners:
  - name: edge
    listen: 127.0.0.1:8080
    routes:
      - service: s
        cors:
          allow_origins: ["https://app.example.com"]
          allow_headers: [Content-Type, X-Trace]
)");
  ASSERT_TRUE(config);
  const auto& cors = config->listeners[0].routes[0].cors;
  ASSERT_TRUE(cors);
  EXPECT_EQ(cors->allow_origins, std::vector<std::string>{"https://app.example.com"});
  EXPECT_TRUE(cors->allow_methods.empty());
  EXPECT_EQ(cors->allow_headers, (std::vector<std::string>{"content-type", "x-trace"}));
  EXPECT_FALSE(cors->allow_credentials);
  EXPECT_EQ(cors->max_age, std::chrono::minutes(10));
  auto again = LoadString(ToJson(*config), "t.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->listeners[0].routes[0].cors, cors);
}

TEST(ConfigAccess, AuthorizationRulesInOrderWithTheirFields) {
  auto config = Load(kService + R"(
listeners:
  - name: edge
    listen: 127.0.0.1:8080
    routes:
      - {name: orders, service: s}
authorization:
  rules:
    - deny: {callers: ["partner-*"], methods: [DELETE]}
    - allow: {routes: [orders, bus.publish], paths: ["/orders/*"], claims: {scope: write}}
)");
  ASSERT_TRUE(config);
  ASSERT_TRUE(config->authorization);
  const Authorization& a = *config->authorization;
  EXPECT_FALSE(a.default_allow);
  ASSERT_EQ(a.rules.size(), 2u);
  EXPECT_FALSE(a.rules[0].allow);
  EXPECT_EQ(a.rules[0].callers, std::vector<std::string>{"partner-*"});
  EXPECT_EQ(a.rules[0].methods, std::vector<std::string>{"DELETE"});
  EXPECT_TRUE(a.rules[1].allow);
  EXPECT_EQ(a.rules[1].routes, (std::vector<std::string>{"orders", "bus.publish"}));
  EXPECT_EQ(a.rules[1].paths, std::vector<std::string>{"/orders/*"});
  ASSERT_EQ(a.rules[1].claims.size(), 1u);
  EXPECT_EQ(a.rules[1].claims[0], std::make_pair(std::string("scope"), std::string("write")));
  auto again = LoadString(ToJson(*config), "t.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->authorization, config->authorization);
}

TEST(ConfigAccess, DefaultAllowIsWritten) {
  auto config = Load(kService + "authorization: {default: allow, rules: []}\n");
  ASSERT_TRUE(config);
  EXPECT_TRUE(config->authorization->default_allow);
}

}  // namespace
}  // namespace ferry::config
