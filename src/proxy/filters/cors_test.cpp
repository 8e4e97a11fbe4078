#include "proxy/filters/cors.hpp"

#include <gtest/gtest.h>

#include "proxy/filters/test_exchange.hpp"

namespace ferry::proxy::filters {
namespace {

using Exchange = TestExchange;

config::Cors AppCors() {
  config::Cors cors;
  cors.allow_origins = {"https://app.example.com"};
  cors.allow_headers = {"content-type"};
  cors.expose_headers = {"x-request-id"};
  return cors;
}

std::unique_ptr<Exchange> Call(const CorsFilter& filter, std::string method,
                               std::string_view origin, std::string_view asked_method = {}) {
  auto e = std::make_unique<Exchange>();
  e->head.method = std::move(method);
  e->head.target = "/items";
  if (!origin.empty()) e->head.headers.Add("Origin", origin);
  if (!asked_method.empty()) e->head.headers.Add("Access-Control-Request-Method", asked_method);
  e->verdict = filter.OnRequest(e->context);
  return e;
}

TEST(CorsFilter, AnAllowedPreflightIsAnswered204Here) {
  config::Route route;
  route.match.methods = {"GET", "PATCH"};
  const CorsFilter filter(AppCors(), route);
  auto e = Call(filter, "OPTIONS", "https://app.example.com", "PATCH");
  ASSERT_EQ(e->verdict, Verdict::kReply);
  EXPECT_EQ(e->reply.status, 204);
  EXPECT_EQ(e->reply.code, "cors_preflight");
  EXPECT_EQ(e->reply.headers.Get("access-control-allow-origin"), "https://app.example.com");
  EXPECT_EQ(e->reply.headers.Get("access-control-allow-methods"), "GET, PATCH");
  EXPECT_TRUE(e->reply.body.empty());
  // Its own answer is not touched again on the way out.
  filter.OnLocalReply(e->context, e->reply);
  EXPECT_FALSE(e->reply.headers.Has("access-control-expose-headers"));
}

TEST(CorsFilter, ARefusedPreflightIs403CorsRejectedWithoutCorsHeaders) {
  const CorsFilter filter(AppCors(), config::Route{});
  auto e = Call(filter, "OPTIONS", "https://evil.test", "GET");
  ASSERT_EQ(e->verdict, Verdict::kReply);
  EXPECT_EQ(e->reply.status, 403);
  EXPECT_EQ(e->reply.code, "cors_rejected");
  EXPECT_NE(e->reply.body.find("origin is not allowed"), std::string::npos);
  filter.OnLocalReply(e->context, e->reply);
  EXPECT_FALSE(e->reply.headers.Has("access-control-allow-origin"));
}

TEST(CorsFilter, AnActualRequestGoesOnAndItsResponseGetsTheHeaders) {
  const CorsFilter filter(AppCors(), config::Route{});
  auto e = Call(filter, "GET", "https://app.example.com");
  EXPECT_EQ(e->verdict, Verdict::kContinue);
  http::ResponseHead response;
  response.status = 200;
  filter.OnResponse(e->context, response);
  EXPECT_EQ(response.headers.Get("access-control-allow-origin"), "https://app.example.com");
  EXPECT_EQ(response.headers.Get("access-control-expose-headers"), "x-request-id");
}

TEST(CorsFilter, ALaterFiltersLocalReplyGetsTheHeadersToo) {
  const CorsFilter filter(AppCors(), config::Route{});
  auto e = Call(filter, "GET", "https://app.example.com");
  e->context.Answer(401, "api_key_missing");
  filter.OnLocalReply(e->context, e->reply);
  EXPECT_EQ(e->reply.headers.Get("access-control-allow-origin"), "https://app.example.com");
}

TEST(CorsFilter, OtherOriginsAndPlainOptionsGoOnUntouched) {
  const CorsFilter filter(AppCors(), config::Route{});
  auto other = Call(filter, "GET", "https://evil.test");
  EXPECT_EQ(other->verdict, Verdict::kContinue);
  http::ResponseHead response;
  filter.OnResponse(other->context, response);
  EXPECT_FALSE(response.headers.Has("access-control-allow-origin"));
  // OPTIONS without Access-Control-Request-Method is not a preflight: the upstream answers it.
  EXPECT_EQ(Call(filter, "OPTIONS", "https://app.example.com")->verdict, Verdict::kContinue);
}

}  // namespace
}  // namespace ferry::proxy::filters
