// The PUT body of a subscription: only what it gives changes (backoff field by field), and a bad
// body is refused whole with a message that names the field.
#include "bus/api/subscription_put.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry::bus {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

const std::map<std::string, config::Service> kServices = {{"hooks", {}}, {"audit", {}}};

SubscriptionOptions Configured() {
  SubscriptionOptions o;
  o.delivery.lease = 7s;
  o.delivery.max_deliveries = 9;
  o.delivery.backoff = {.initial = 150ms, .max = 700ms, .multiplier = 3.0};
  o.filter.type = "order.*";
  return o;
}

std::string ErrorOf(std::string_view body, SubscriptionOptions current = Configured()) {
  auto r = ApplySubscriptionPut(body, std::move(current), kServices);
  if (r) return "(accepted)";
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  return r.error().message();
}

TEST(SubscriptionPutTest, EmptyBodyChangesNothing) {
  auto r = ApplySubscriptionPut("", Configured(), kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->delivery.backoff.initial, 150ms);
  EXPECT_EQ(r->delivery.lease, 7s);
  EXPECT_EQ(r->filter.type, "order.*");
}

TEST(SubscriptionPutTest, WholeBackoffIsSet) {
  auto r = ApplySubscriptionPut(R"({"backoff": {"initial": "1s", "max": "5m", "multiplier": 2}})",
                                Configured(), kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->delivery.backoff.initial, 1s);
  EXPECT_EQ(r->delivery.backoff.max, 5min);
  EXPECT_EQ(r->delivery.backoff.multiplier, 2.0);
  EXPECT_EQ(r->delivery.lease, 7s);  // not given: kept
}

TEST(SubscriptionPutTest, PartialBackoffKeepsTheOtherFields) {
  auto r = ApplySubscriptionPut(R"({"backoff": {"multiplier": 1.5}})", Configured(), kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->delivery.backoff.initial, 150ms);
  EXPECT_EQ(r->delivery.backoff.max, 700ms);
  EXPECT_EQ(r->delivery.backoff.multiplier, 1.5);
  r = ApplySubscriptionPut(R"({"backoff": {"max": "2s"}})", Configured(), kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->delivery.backoff.initial, 150ms);
  EXPECT_EQ(r->delivery.backoff.max, 2s);
  EXPECT_EQ(r->delivery.backoff.multiplier, 3.0);
}

TEST(SubscriptionPutTest, BackoffMaxBelowInitialIsRefusedAgainstTheRunningValue) {
  EXPECT_EQ(ErrorOf(R"({"backoff": {"max": "100ms"}})"),
            "'backoff.max' (100ms) must be at least 'backoff.initial' (150ms, as it runs now)");
  EXPECT_EQ(ErrorOf(R"({"backoff": {"initial": "1s"}})"),
            "'backoff.max' (700ms, as it runs now) must be at least 'backoff.initial' (1s)");
  // Both given together: checked against each other only.
  EXPECT_EQ(ErrorOf(R"({"backoff": {"initial": "1s", "max": "1s"}})"), "(accepted)");
}

TEST(SubscriptionPutTest, BadBackoffValuesNameTheField) {
  EXPECT_THAT(ErrorOf(R"({"backoff": {"initial": "soon"}})"),
              HasSubstr("'backoff.initial' must be a positive duration like \"1s\", got \"soon\""));
  EXPECT_THAT(ErrorOf(R"({"backoff": {"initial": "0s"}})"),
              HasSubstr("'backoff.initial' must be a positive duration"));
  EXPECT_THAT(ErrorOf(R"({"backoff": {"max": 5}})"),
              HasSubstr("'backoff.max' must be a duration like \"1s\", got 5"));
  EXPECT_THAT(ErrorOf(R"({"backoff": {"multiplier": 0.5}})"),
              HasSubstr("'backoff.multiplier' must be a number >= 1"));
  EXPECT_THAT(ErrorOf(R"({"backoff": {"multiplier": "2"}})"),
              HasSubstr("'backoff.multiplier' must be a number >= 1"));
  EXPECT_THAT(ErrorOf(R"({"backoff": {"jitter": "1s"}})"),
              HasSubstr("unknown backoff key 'jitter'"));
  EXPECT_THAT(ErrorOf(R"({"backoff": "1s"})"), HasSubstr("'backoff' must be an object"));
  EXPECT_THAT(ErrorOf(R"({"backoff": null})"), HasSubstr("'backoff' must be an object"));
}

TEST(SubscriptionPutTest, OneBadFieldRefusesTheWholeBody) {
  // The lease comes first and is fine; the bad backoff after it still refuses everything
  // (the result is not applied anywhere: the caller gets only the error).
  EXPECT_THAT(ErrorOf(R"({"lease": "1m", "backoff": {"initial": "x"}})"),
              HasSubstr("'backoff.initial'"));
}

TEST(SubscriptionPutTest, TheOtherOptions) {
  auto r = ApplySubscriptionPut(
      R"({"filter": {"source": "/shop"}, "lease": "1m", "max_deliveries": 0, "from_beginning": true})",
      Configured(), kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->filter.type, "");  // a given filter replaces the whole filter
  EXPECT_EQ(r->filter.source, "/shop");
  EXPECT_EQ(r->delivery.lease, 1min);
  EXPECT_EQ(r->delivery.max_deliveries, 0u);
  EXPECT_TRUE(r->from_beginning);
  EXPECT_THAT(ErrorOf(R"({"max_deliveries": 4294967296})"),
              HasSubstr("'max_deliveries' must be an integer from 0 to 4294967295"));
  EXPECT_THAT(ErrorOf(R"({"max_deliveries": -1})"), HasSubstr("'max_deliveries'"));
  EXPECT_THAT(ErrorOf(R"({"lease": "0s"})"), HasSubstr("'lease' must be a positive duration"));
  EXPECT_THAT(ErrorOf(R"({"filter": {"type": "a*b"}})"), HasSubstr("'*' is only allowed"));
  EXPECT_THAT(ErrorOf(R"({"filter": {"colour": "x"}})"), HasSubstr("unknown filter key 'colour'"));
  EXPECT_THAT(ErrorOf(R"({"nope": 1})"), HasSubstr("unknown key 'nope'"));
  EXPECT_THAT(ErrorOf("[1]"), HasSubstr("the body must be a JSON object"));
  EXPECT_THAT(ErrorOf("{"), HasSubstr("the body must be a JSON object"));
}

TEST(SubscriptionPutTest, PushNeedsAServiceOfTheConfigAndTakesItsDefaults) {
  SubscriptionOptions current = Configured();
  current.delivery.lease = 30s;  // above the default push timeout
  auto r = ApplySubscriptionPut(R"({"push": {"service": "hooks"}})", current, kServices);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(r->push.has_value());
  EXPECT_EQ(r->push->service, "hooks");
  EXPECT_EQ(r->push->path, "/");
  EXPECT_EQ(r->push->timeout, 10s);
  EXPECT_EQ(r->push->concurrency, 1u);
  EXPECT_EQ(ErrorOf(R"({"push": {"path": "/x"}})"),
            "'push' needs 'service' (a service of the node's config): the subscription does not "
            "push yet");
  EXPECT_EQ(ErrorOf(R"({"push": {"service": "nope"}})"),
            "'push.service': unknown service 'nope' (the config's services: audit, hooks)");
  EXPECT_EQ(
      ApplySubscriptionPut(R"({"push": {"service": "x"}})", Configured(), {}).error().message(),
      "'push.service': unknown service 'x' (the config's services: none)");
}

TEST(SubscriptionPutTest, PushChangesOnlyTheFieldsGivenAndNullTurnsItOff) {
  SubscriptionOptions pushing = Configured();
  pushing.push = PushOptions{"hooks", "/in", 2s, 4};
  auto r = ApplySubscriptionPut(R"({"push": {"concurrency": 8}})", pushing, kServices);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(r->push.has_value());
  EXPECT_EQ(r->push->service, "hooks");
  EXPECT_EQ(r->push->path, "/in");
  EXPECT_EQ(r->push->timeout, 2s);
  EXPECT_EQ(r->push->concurrency, 8u);
  r = ApplySubscriptionPut(
      R"({"push": {"service": "audit", "path": "/a", "timeout": "500ms", "concurrency": 1024}})",
      pushing, kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_EQ(r->push->service, "audit");
  EXPECT_EQ(r->push->path, "/a");
  EXPECT_EQ(r->push->timeout, 500ms);
  EXPECT_EQ(r->push->concurrency, 1024u);
  r = ApplySubscriptionPut(R"({"push": null})", pushing, kServices);
  ASSERT_TRUE(r) << r.error().message();
  EXPECT_FALSE(r->push.has_value());
  // A body without push keeps it.
  r = ApplySubscriptionPut(R"({"lease": "1m"})", pushing, kServices);
  ASSERT_TRUE(r) << r.error().message();
  ASSERT_TRUE(r->push.has_value());
  EXPECT_EQ(r->push->path, "/in");
}

// A push still waiting for its answer when its lease ends would be delivered again meanwhile.
TEST(SubscriptionPutTest, PushTimeoutMustBeBelowTheLease) {
  // Configured(): lease 7s; a new push's timeout defaults to 10s.
  EXPECT_EQ(ErrorOf(R"({"push": {"service": "hooks"}})"),
            "'push.timeout' (10s, as it runs now) must be less than 'lease' (7s, as it runs now): "
            "a delivery whose push outlasts its lease is delivered again meanwhile");
  EXPECT_EQ(ErrorOf(R"({"push": {"service": "hooks", "timeout": "7s"}})"),
            "'push.timeout' (7s) must be less than 'lease' (7s, as it runs now): a delivery "
            "whose push outlasts its lease is delivered again meanwhile");
  EXPECT_EQ(ErrorOf(R"({"push": {"service": "hooks"}, "lease": "10s"})"),
            "'push.timeout' (10s, as it runs now) must be less than 'lease' (10s): a delivery "
            "whose push outlasts its lease is delivered again meanwhile");
  EXPECT_EQ(ErrorOf(R"({"push": {"service": "hooks", "timeout": "6s"}})"), "(accepted)");
  EXPECT_EQ(ErrorOf(R"({"push": {"service": "hooks"}, "lease": "11s"})"), "(accepted)");
  // Shortening the lease under a running push is checked too.
  SubscriptionOptions pushing = Configured();
  pushing.push = PushOptions{"hooks", "/in", 2s, 4};
  EXPECT_EQ(ErrorOf(R"({"lease": "2s"})", pushing),
            "'push.timeout' (2s, as it runs now) must be less than 'lease' (2s): a delivery "
            "whose push outlasts its lease is delivered again meanwhile");
  EXPECT_EQ(ErrorOf(R"({"lease": "3s"})", pushing), "(accepted)");
  // A body that touches neither leaves a stored pair alone (an older node may have stored it).
  pushing.push->timeout = 9s;
  EXPECT_EQ(ErrorOf(R"({"max_deliveries": 2})", pushing), "(accepted)");
}

TEST(SubscriptionPutTest, BadPushValuesNameTheField) {
  const auto bad = [](std::string_view body) { return ErrorOf(body); };
  EXPECT_THAT(bad(R"({"push": {"service": "hooks", "path": "in"}})"),
              HasSubstr("'push.path' must be a path starting with '/', got 'in'"));
  EXPECT_THAT(bad(R"({"push": {"service": "hooks", "timeout": "0s"}})"),
              HasSubstr("'push.timeout' must be a positive duration"));
  EXPECT_THAT(bad(R"({"push": {"service": "hooks", "timeout": "fast"}})"),
              HasSubstr("'push.timeout' must be a positive duration like \"1s\", got \"fast\""));
  EXPECT_THAT(bad(R"({"push": {"service": "hooks", "concurrency": 0}})"),
              HasSubstr("'push.concurrency' must be an integer from 1 to 1024, got 0"));
  EXPECT_THAT(bad(R"({"push": {"service": "hooks", "concurrency": 1025}})"),
              HasSubstr("'push.concurrency' must be an integer from 1 to 1024"));
  EXPECT_THAT(bad(R"({"push": {"service": "hooks", "retries": 3}})"),
              HasSubstr("unknown push key 'retries'"));
  EXPECT_THAT(bad(R"({"push": {"service": 5}})"), HasSubstr("'push.service' must be a string"));
  EXPECT_THAT(bad(R"({"push": "hooks"})"),
              HasSubstr("'push' must be an object, or null to turn push off"));
}

}  // namespace
}  // namespace ferry::bus
