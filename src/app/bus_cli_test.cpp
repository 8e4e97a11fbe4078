#include "app/bus_cli.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::app {
namespace {

std::string FixedId() { return "generated-id"; }

const std::string* Header(const HttpRequest& request, std::string_view name) {
  for (const auto& [key, value] : request.headers) {
    if (key == name) return &value;
  }
  return nullptr;
}

TEST(TargetError, AcceptsAQueueOrATopicWithItsSubscription) {
  EXPECT_EQ(TargetError({"q", "", ""}, true), "");
  EXPECT_EQ(TargetError({"", "t", "s"}, true), "");
  EXPECT_EQ(TargetError({"", "t", ""}, false), "");  // publish writes to the topic itself
}

TEST(TargetError, SaysWhatIsWrong) {
  EXPECT_NE(TargetError({"", "", ""}, false).find("--queue or --topic"), std::string::npos);
  EXPECT_NE(TargetError({"q", "t", ""}, false).find("not both"), std::string::npos);
  EXPECT_NE(TargetError({"q", "", "s"}, true).find("--subscription"), std::string::npos);
  EXPECT_NE(TargetError({"", "t", ""}, true).find("needs --subscription"), std::string::npos);
}

TEST(InboxPath, NamesQueuesAndSubscriptionsEncoded) {
  EXPECT_EQ(InboxPath({"payments", "", ""}), "/v1/queues/payments");
  EXPECT_EQ(InboxPath({"", "orders", "billing"}), "/v1/topics/orders/subscriptions/billing");
  EXPECT_EQ(InboxPath({"", "orders", ""}), "/v1/topics/orders");
  EXPECT_EQ(InboxPath({"a b", "", ""}), "/v1/queues/a%20b");
}

TEST(BuildPublishRequest, PlainBodyWithIdempotencyKey) {
  PublishOptions options;
  options.target.queue = "payments";
  options.id = "order-1";
  options.content_type = "application/json";
  const HttpRequest r = BuildPublishRequest(options, "{}", FixedId);
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.target, "/v1/queues/payments/messages");
  EXPECT_EQ(r.body, "{}");
  ASSERT_NE(Header(r, "idempotency-key"), nullptr);
  EXPECT_EQ(*Header(r, "idempotency-key"), "order-1");
  EXPECT_EQ(*Header(r, "content-type"), "application/json");
  EXPECT_EQ(Header(r, "ce-specversion"), nullptr);
}

TEST(BuildPublishRequest, PlainBodyWithoutIdSendsNoKey) {
  PublishOptions options;
  options.target.queue = "q";
  const HttpRequest r = BuildPublishRequest(options, "x", FixedId);
  EXPECT_EQ(Header(r, "idempotency-key"), nullptr);
  EXPECT_EQ(Header(r, "content-type"), nullptr);
}

TEST(BuildPublishRequest, BinaryModeToATopicWithEveryAttribute) {
  PublishOptions options;
  options.target.topic = "orders";
  options.id = "o-1";
  options.type = "order.created";
  options.source = "/shop";
  options.subject = "eu-1";
  options.key = "customer-7";
  options.delay = "5s";
  const HttpRequest r = BuildPublishRequest(options, "data", FixedId);
  EXPECT_EQ(r.target, "/v1/topics/orders/events?delay=5s");
  EXPECT_EQ(*Header(r, "ce-specversion"), "1.0");
  EXPECT_EQ(*Header(r, "ce-id"), "o-1");
  EXPECT_EQ(*Header(r, "ce-type"), "order.created");
  EXPECT_EQ(*Header(r, "ce-source"), "/shop");
  EXPECT_EQ(*Header(r, "ce-subject"), "eu-1");
  EXPECT_EQ(*Header(r, "ce-partitionkey"), "customer-7");
  EXPECT_EQ(Header(r, "idempotency-key"), nullptr);
}

TEST(BuildPublishRequest, BinaryModeDefaultsMissingAttributes) {
  PublishOptions options;
  options.target.queue = "q";
  options.key = "k";  // an ordering key travels only as a CloudEvents attribute
  const HttpRequest r = BuildPublishRequest(options, "", FixedId);
  EXPECT_EQ(*Header(r, "ce-id"), "generated-id");
  EXPECT_EQ(*Header(r, "ce-type"), kDefaultType);
  EXPECT_EQ(*Header(r, "ce-source"), kDefaultSource);
}

TEST(DescribeErrorAnswer, UsesTheApiErrorMessage) {
  HttpResponse r;
  r.status = 404;
  r.body = R"({"error":{"code":"not_found","status":404,"message":"no queue 'x'"}})";
  EXPECT_EQ(DescribeErrorAnswer(r), "HTTP 404: no queue 'x'");
}

TEST(DescribeErrorAnswer, FallsBackToTheBody) {
  HttpResponse r;
  r.status = 502;
  r.body = "upstream down\n";
  EXPECT_EQ(DescribeErrorAnswer(r), "HTTP 502: upstream down");
  r.body.clear();
  EXPECT_EQ(DescribeErrorAnswer(r), "HTTP 502");
}

}  // namespace
}  // namespace ferry::app
