// The jwt filter's answers: where it finds the token, its 401s with WWW-Authenticate (RFC 6750
// section 3), 503 while no JWKS is loaded, the claims it forwards and publishes, and the
// unknown-kid re-fetch wish. Keys are made with OpenSSL; time is a fake clock.
#include "proxy/filters/jwt.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "auth/test_keys.hpp"
#include "proxy/filter_wait.hpp"

namespace ferry::proxy::filters {
namespace {

using auth::Algorithm;

EVP_PKEY* Key() {
  static auth::testing::Pkey key = auth::testing::MakeEcKey("P-256");
  return key.get();
}

class JwtFilterTest : public ::testing::Test {
 protected:
  JwtFilterTest() {
    config::JwtProvider provider;
    provider.name = "idp";
    provider.issuer = "https://idp.example";
    provider.audiences = {"api"};
    provider.jwks = "/unused/by/this/test";
    provider.cookie = "session";
    provider.forward_claims = {{"sub", "x-user"}, {"roles", "x-roles"}, {"bad", "x-bad"}};
    provider_ = std::make_shared<auth::Provider>(provider, "");
    filter_.emplace(provider_);
  }

  void LoadKeys(std::string_view kid = "k1") {
    auto jwks = auth::ParseJwks(
        R"({"keys":[)" + auth::testing::PublicJwk(Key(), fmt::format(R"("kid":"{}")", kid)) + "]}");
    ASSERT_TRUE(jwks);
    provider_->Publish(std::make_shared<const auth::Jwks>(std::move(*jwks)));
  }

  std::string Token(std::string_view kid = "k1", long exp_offset = 300) {
    const long now =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.wall().time_since_epoch()).count();
    return auth::testing::MakeToken(
        Algorithm::kES256, fmt::format(R"({{"alg":"ES256","kid":"{}"}})", kid),
        fmt::format(R"({{"iss":"https://idp.example","aud":"api","sub":"alice","exp":{},)"
                    R"("roles":["admin","dev"],"bad":"a\r\nx-evil: 1"}})",
                    now + exp_offset),
        Key());
  }

  Verdict Run() {
    FilterContext context{head_,  route_, "127.0.0.1", "rid",      {},
                          reply_, clock_, 0,           observers_, caller_};
    return filter_->OnRequest(context);
  }

  std::string WwwAuthenticate() const {
    return std::string(reply_.headers.Get("www-authenticate").value_or(""));
  }

  FakeClock clock_;
  std::shared_ptr<auth::Provider> provider_;
  std::optional<JwtFilter> filter_;
  http::RequestHead head_;
  config::Route route_;
  LocalReply reply_;
  std::vector<std::unique_ptr<ResponseObserver>> observers_;
  CallerIdentity caller_;
};

TEST_F(JwtFilterTest, AValidBearerTokenGoesOnWithItsClaims) {
  LoadKeys();
  head_.headers.Add("authorization", "bEaReR  " + Token());
  head_.headers.Add("x-user", "spoofed");
  EXPECT_EQ(Run(), Verdict::kContinue);
  EXPECT_EQ(head_.headers.Get("x-user"), "alice");
  EXPECT_EQ(head_.headers.Get("x-roles"), "admin,dev");
  EXPECT_FALSE(head_.headers.Has("x-bad"));  // a claim with CR LF never becomes a header
  EXPECT_FALSE(head_.headers.Has("x-evil"));
  EXPECT_TRUE(head_.headers.Has("authorization"));  // left for the upstream to relay
  EXPECT_TRUE(caller_.jwt);
  const std::pair<std::string, std::string> admin{"roles", "admin"};
  EXPECT_NE(std::find(caller_.claims.begin(), caller_.claims.end(), admin), caller_.claims.end());
}

TEST_F(JwtFilterTest, TheCookieIsReadWhenThereIsNoBearer) {
  LoadKeys();
  head_.headers.Add("cookie", "theme=dark; session=" + Token() + "; other=1");
  EXPECT_EQ(Run(), Verdict::kContinue);
}

TEST_F(JwtFilterTest, NoTokenIs401WithoutAnErrorAttribute) {
  LoadKeys();
  head_.headers.Add("authorization", "Basic YWxhZGRpbjpvcGVuc2VzYW1l");
  EXPECT_EQ(Run(), Verdict::kReply);
  EXPECT_EQ(reply_.status, 401);
  EXPECT_EQ(reply_.code, "jwt_missing");
  EXPECT_EQ(WwwAuthenticate(), R"(Bearer realm="idp")");
  EXPECT_NE(reply_.body.find(R"("code":"jwt_missing")"), std::string::npos);
  EXPECT_FALSE(caller_.jwt);
}

TEST_F(JwtFilterTest, AnInvalidTokenIs401InvalidToken) {
  LoadKeys();
  head_.headers.Add("authorization", "Bearer " + Token("k1", -3600));
  EXPECT_EQ(Run(), Verdict::kReply);
  EXPECT_EQ(reply_.status, 401);
  EXPECT_EQ(reply_.code, "jwt_invalid");
  EXPECT_EQ(WwwAuthenticate(),
            R"(Bearer realm="idp", error="invalid_token", error_description="token has expired")");
  EXPECT_FALSE(caller_.jwt);
}

TEST_F(JwtFilterTest, NoKeysYetIs503) {
  head_.headers.Add("authorization", "Bearer " + Token());
  EXPECT_EQ(Run(), Verdict::kReply);
  EXPECT_EQ(reply_.status, 503);
  EXPECT_EQ(reply_.code, "jwks_unavailable");
}

TEST_F(JwtFilterTest, AnUnknownKidAsksForARefetch) {
  LoadKeys("k1");
  head_.headers.Add("authorization", "Bearer " + Token("k2"));
  EXPECT_FALSE(provider_->TakeRefetchWish());
  EXPECT_EQ(Run(), Verdict::kReply);
  EXPECT_EQ(reply_.status, 401);
  EXPECT_TRUE(provider_->TakeRefetchWish());
}

TEST(JwtFilterFactory, OnlyRoutesWithAuthGetTheFilter) {
  config::Config config;
  config::JwtProvider provider;
  provider.name = "idp";
  provider.issuer = "i";
  provider.jwks = "/nonexistent";
  config.auth.jwt["idp"] = provider;
  config::Route plain;
  EXPECT_EQ(MakeJwt(plain, config), nullptr);
  config::Route guarded;
  guarded.auth = config::RouteAuth{"idp"};
  auto filter = MakeJwt(guarded, config);
  ASSERT_NE(filter, nullptr);
  EXPECT_EQ(filter->name(), "jwt");
  // The same provider config gives the same provider (its keys survive a reload).
  EXPECT_EQ(auth::ProviderFor(provider), auth::ProviderFor(provider));
}

}  // namespace
}  // namespace ferry::proxy::filters
