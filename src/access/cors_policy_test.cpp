#include "access/cors_policy.hpp"

#include <gtest/gtest.h>

namespace ferry::access {
namespace {

config::Cors AppCors() {
  config::Cors cors;
  cors.allow_origins = {"https://app.example.com"};
  cors.allow_methods = {"GET", "PUT"};
  cors.allow_headers = {"content-type", "x-trace"};
  cors.expose_headers = {"x-request-id", "etag"};
  cors.allow_credentials = true;
  cors.max_age = std::chrono::hours(1);
  return cors;
}

http::Headers Preflight(std::string_view origin, std::string_view method,
                        std::string_view headers = {}) {
  http::Headers h;
  h.Add("Origin", origin);
  h.Add("Access-Control-Request-Method", method);
  if (!headers.empty()) h.Add("Access-Control-Request-Headers", headers);
  return h;
}

TEST(CorsPolicy, IsPreflightNeedsOptionsOriginAndRequestMethod) {
  http::RequestHead r;
  r.method = "OPTIONS";
  r.target = "/";
  r.headers.Add("Origin", "https://app.example.com");
  EXPECT_FALSE(CorsPolicy::IsPreflight(r));
  r.headers.Add("Access-Control-Request-Method", "PUT");
  EXPECT_TRUE(CorsPolicy::IsPreflight(r));
  r.method = "GET";
  EXPECT_FALSE(CorsPolicy::IsPreflight(r));
}

TEST(CorsPolicy, AnAllowedPreflightGetsEveryHeader) {
  const CorsPolicy policy(AppCors(), {});
  http::Headers out;
  ASSERT_EQ(policy.AnswerPreflight(
                Preflight("https://app.example.com", "PUT", "X-Trace, content-type"), out),
            CorsPolicy::Preflight::kAllowed);
  EXPECT_EQ(out.Get("access-control-allow-origin"), "https://app.example.com");
  EXPECT_EQ(out.Get("access-control-allow-methods"), "GET, PUT");
  EXPECT_EQ(out.Get("access-control-allow-headers"), "content-type, x-trace");
  EXPECT_EQ(out.Get("access-control-max-age"), "3600");
  EXPECT_EQ(out.Get("access-control-allow-credentials"), "true");
  ASSERT_TRUE(out.Get("vary"));
  EXPECT_TRUE(http::HasToken(*out.Get("vary"), "origin"));
}

TEST(CorsPolicy, OriginsCompareWithoutCaseButExactly) {
  const CorsPolicy policy(AppCors(), {});
  EXPECT_TRUE(policy.OriginAllowed("https://APP.example.com"));
  EXPECT_FALSE(policy.OriginAllowed("https://app.example.com.evil.test"));
  EXPECT_FALSE(policy.OriginAllowed("http://app.example.com"));
  EXPECT_FALSE(policy.OriginAllowed("null"));
}

TEST(CorsPolicy, PreflightsOutsideThePolicyAreRejectedWithoutHeaders) {
  const CorsPolicy policy(AppCors(), {});
  http::Headers out;
  EXPECT_EQ(policy.AnswerPreflight(Preflight("https://evil.test", "GET"), out),
            CorsPolicy::Preflight::kOriginRejected);
  EXPECT_EQ(policy.AnswerPreflight(Preflight("https://app.example.com", "DELETE"), out),
            CorsPolicy::Preflight::kMethodRejected);
  EXPECT_EQ(policy.AnswerPreflight(Preflight("https://app.example.com", "put"), out),
            CorsPolicy::Preflight::kMethodRejected);
  EXPECT_EQ(policy.AnswerPreflight(
                Preflight("https://app.example.com", "GET", "x-trace, authorization"), out),
            CorsPolicy::Preflight::kHeadersRejected);
  EXPECT_EQ(out.size(), 0u);
}

TEST(CorsPolicy, MethodsDefaultToTheRoutesThenToTheSimpleOnes) {
  config::Cors cors;
  cors.allow_origins = {"*"};
  EXPECT_EQ(CorsPolicy(cors, {"DELETE"}).methods(), std::vector<std::string>{"DELETE"});
  EXPECT_EQ(CorsPolicy(cors, {}).methods(), (std::vector<std::string>{"GET", "HEAD", "POST"}));
}

TEST(CorsPolicy, ResponsesToAllowedOriginsGetTheOriginCredentialsAndExposedHeaders) {
  const CorsPolicy policy(AppCors(), {});
  http::Headers out;
  out.Add("Access-Control-Allow-Origin", "*");  // the upstream's own, replaced
  out.Add("Vary", "Accept-Encoding");
  EXPECT_TRUE(policy.AddResponseHeaders("https://app.example.com", out));
  EXPECT_EQ(out.Get("access-control-allow-origin"), "https://app.example.com");
  EXPECT_EQ(out.Get("access-control-allow-credentials"), "true");
  EXPECT_EQ(out.Get("access-control-expose-headers"), "x-request-id, etag");
  int vary = 0;
  bool origin = false;
  out.ForEach([&](const http::Headers::Field& f) {
    if (http::EqualsIgnoreCase(f.name, "vary")) {
      ++vary;
      origin = origin || f.value == "Origin";
    }
  });
  EXPECT_EQ(vary, 2);
  EXPECT_TRUE(origin);
}

TEST(CorsPolicy, OtherOriginsAndNoOriginLeaveTheResponseAlone) {
  const CorsPolicy policy(AppCors(), {});
  http::Headers out;
  EXPECT_FALSE(policy.AddResponseHeaders("https://evil.test", out));
  EXPECT_FALSE(policy.AddResponseHeaders(std::nullopt, out));
  EXPECT_EQ(out.size(), 0u);
}

TEST(CorsPolicy, AnyOriginAnswersStarWithoutVary) {
  config::Cors cors;
  cors.allow_origins = {"*"};
  const CorsPolicy policy(cors, {});
  http::Headers out;
  EXPECT_TRUE(policy.AddResponseHeaders("https://whoever.test", out));
  EXPECT_EQ(out.Get("access-control-allow-origin"), "*");
  EXPECT_FALSE(out.Has("vary"));
  EXPECT_FALSE(out.Has("access-control-allow-credentials"));
}

}  // namespace
}  // namespace ferry::access
