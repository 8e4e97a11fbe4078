#include "proxy/filters/api_keys.hpp"

#include <gtest/gtest.h>

#include "proxy/filters/test_exchange.hpp"

namespace ferry::proxy::filters {
namespace {

using Exchange = TestExchange;

config::ApiKeys Keys() {
  config::ApiKeys keys;
  keys.header = "x-api-key";
  keys.keys.push_back({"billing", access::Sha256Hex("s3cret-billing")});
  keys.keys.push_back({"reports", access::Sha256Hex("s3cret-reports")});
  return keys;
}

// One request through the filter; `key` nullptr: no header.
std::unique_ptr<Exchange> Call(const ApiKeysFilter& filter, const char* key) {
  auto e = std::make_unique<Exchange>();
  e->head.method = "GET";
  e->head.target = "/orders";
  e->head.headers.Add("accept", "*/*");
  if (key != nullptr) e->head.headers.Add("X-Api-Key", key);
  e->verdict = filter.OnRequest(e->context);
  return e;
}

TEST(ApiKeysFilter, AnAcceptedKeyNamesTheCallerAndIsNotForwarded) {
  const ApiKeysFilter filter(Keys());
  auto e = Call(filter, "s3cret-reports");
  EXPECT_EQ(e->verdict, Verdict::kContinue);
  EXPECT_EQ(e->caller.api_key, "reports");
  EXPECT_FALSE(e->head.headers.Has("x-api-key"));
  EXPECT_EQ(e->head.headers.Get("accept"), "*/*");
}

TEST(ApiKeysFilter, NoKeyIs401MissingWithAChallenge) {
  const ApiKeysFilter filter(Keys());
  auto e = Call(filter, nullptr);
  ASSERT_EQ(e->verdict, Verdict::kReply);
  EXPECT_EQ(e->reply.status, 401);
  EXPECT_EQ(e->reply.code, "api_key_missing");
  EXPECT_EQ(e->reply.headers.Get("www-authenticate"), "ApiKey header=\"x-api-key\"");
  EXPECT_NE(e->reply.body.find("\"code\":\"api_key_missing\""), std::string::npos);
  EXPECT_NE(e->reply.body.find("\"request_id\":\"rid-1\""), std::string::npos);
  EXPECT_TRUE(e->caller.api_key.empty());
}

TEST(ApiKeysFilter, AWrongKeyIs401InvalidAndTheReplyDoesNotEchoIt) {
  const ApiKeysFilter filter(Keys());
  auto e = Call(filter, "s3cret-guess");
  ASSERT_EQ(e->verdict, Verdict::kReply);
  EXPECT_EQ(e->reply.status, 401);
  EXPECT_EQ(e->reply.code, "api_key_invalid");
  EXPECT_EQ(e->reply.body.find("s3cret-guess"), std::string::npos);
  EXPECT_TRUE(e->caller.api_key.empty());
}

TEST(ApiKeysFilter, TheHeaderIsConfigurable) {
  config::ApiKeys keys = Keys();
  keys.header = "x-partner-key";
  const ApiKeysFilter filter(keys);
  // The key in the default header does not count on this route.
  EXPECT_EQ(Call(filter, "s3cret-billing")->reply.code, "api_key_missing");
}

TEST(ApiKeysFilter, TheFactoryBuildsOnlyForRoutesWithKeys) {
  config::Config config;
  config::Route plain;
  EXPECT_EQ(MakeApiKeys(plain, config), nullptr);
  config::Route keyed;
  keyed.api_keys = Keys();
  EXPECT_NE(MakeApiKeys(keyed, config), nullptr);
}

}  // namespace
}  // namespace ferry::proxy::filters
