// Every forged or wrong token is refused, with the reason the metric and the 401 carry; a good
// one gives its claims. Keys are made with OpenSSL per test; time is a fixed point.
#include "auth/jwt_verifier.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "auth/test_keys.hpp"

namespace ferry::auth {
namespace {

using std::chrono::seconds;
using std::chrono::system_clock;

constexpr long kNow = 1'800'000'000;

class JwtVerifierTest : public ::testing::Test {
 protected:
  JwtVerifierTest() {
    auto jwks = ParseJwks(R"({"keys":[)" + testing::PublicJwk(rsa_raw_, R"("kid":"rsa")") + "," +
                          testing::PublicJwk(ec_raw_, R"("kid":"ec")") + "]}");
    jwks_ = std::move(*jwks);
    JwtOptions options;
    options.issuer = "https://idp.example";
    options.audiences = {"api", "other"};
    options.algorithms.assign(AsymmetricAlgorithms().begin(), AsymmetricAlgorithms().end());
    options.clock_skew = seconds(30);
    verifier_.emplace(options);
  }

  static std::string Payload(long exp = kNow + 300, std::string_view extra = {}) {
    return fmt::format(R"({{"iss":"https://idp.example","aud":"api","sub":"alice","exp":{}{}}})",
                       exp, extra);
  }

  std::string Rs256(std::string_view payload, std::string_view kid = "rsa") {
    return testing::MakeToken(
        Algorithm::kRS256, fmt::format(R"({{"alg":"RS256","kid":"{}"}})", kid), payload, rsa_raw_);
  }

  tl::expected<VerifiedJwt, JwtFailure> Verify(std::string_view token, long now = kNow) {
    return verifier_->Verify(token, &jwks_, system_clock::time_point(seconds(now)));
  }

  JwtError ErrorOf(std::string_view token, long now = kNow) {
    auto result = Verify(token, now);
    EXPECT_FALSE(result) << "accepted: " << token;
    return result ? JwtError::kMalformed : result.error().error;
  }

  // One key pair per run: RSA generation is slow, and no test changes a key.
  static EVP_PKEY* SharedRsa() {
    static testing::Pkey key = testing::MakeRsaKey();
    return key.get();
  }
  static EVP_PKEY* SharedEc() {
    static testing::Pkey key = testing::MakeEcKey("P-256");
    return key.get();
  }

  EVP_PKEY* const rsa_raw_ = SharedRsa();
  EVP_PKEY* const ec_raw_ = SharedEc();
  Jwks jwks_;
  std::optional<JwtVerifier> verifier_;
};

TEST_F(JwtVerifierTest, AValidTokenGivesItsClaims) {
  auto result =
      Verify(Rs256(Payload(kNow + 300, R"(,"roles":["admin","dev"],"n":7,"ok":true,"o":{})")));
  ASSERT_TRUE(result) << result.error().message;
  const Claims expected = {{"iss", "https://idp.example"},
                           {"aud", "api"},
                           {"sub", "alice"},
                           {"exp", std::to_string(kNow + 300)},
                           {"roles", "admin"},
                           {"roles", "dev"},
                           {"n", "7"},
                           {"ok", "true"}};
  EXPECT_EQ(result->claims, expected);
}

TEST_F(JwtVerifierTest, EcTokenWithoutKidFindsItsKey) {
  auto token = testing::MakeToken(Algorithm::kES256, R"({"alg":"ES256"})", Payload(), ec_raw_);
  EXPECT_TRUE(Verify(token));
}

TEST_F(JwtVerifierTest, AudienceMayBeAnArray) {
  EXPECT_TRUE(
      Verify(Rs256(R"({"iss":"https://idp.example","aud":["x","other"],"exp":1800000300})")));
  EXPECT_EQ(ErrorOf(Rs256(R"({"iss":"https://idp.example","aud":["x","y"],"exp":1800000300})")),
            JwtError::kAudience);
}

TEST_F(JwtVerifierTest, NoneIsRefused) {
  const std::string token =
      Base64UrlEncode(R"({"alg":"none"})") + "." + Base64UrlEncode(Payload()) + ".";
  EXPECT_EQ(ErrorOf(token), JwtError::kAlgorithm);
  const std::string upper =
      Base64UrlEncode(R"({"alg":"NONE"})") + "." + Base64UrlEncode(Payload()) + ".";
  EXPECT_EQ(ErrorOf(upper), JwtError::kAlgorithm);
}

TEST_F(JwtVerifierTest, Hs256SignedWithTheRsaPublicKeyIsRefused) {
  // The classic confusion: the attacker HMACs with the public key bytes, hoping the verifier
  // uses "the key" for whatever alg the token names.
  const std::string der = testing::PublicKeyDer(rsa_raw_);
  const std::string jwk = testing::PublicJwk(rsa_raw_);
  for (const std::string& secret : {der, jwk}) {
    auto token = testing::MakeToken(Algorithm::kHS256, R"({"alg":"HS256","kid":"rsa"})", Payload(),
                                    nullptr, secret);
    EXPECT_EQ(ErrorOf(token), JwtError::kAlgorithm);
  }
  // Even with HS256 configured, the secret is the provider's, never the JWKS key.
  JwtOptions options = verifier_->options();
  options.algorithms.push_back(Algorithm::kHS256);
  options.hmac_secret = "the-configured-secret-of-32-bytes";
  JwtVerifier with_secret(options);
  auto forged = testing::MakeToken(Algorithm::kHS256, R"({"alg":"HS256","kid":"rsa"})", Payload(),
                                   nullptr, der);
  auto result = with_secret.Verify(forged, &jwks_, system_clock::time_point(seconds(kNow)));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error, JwtError::kSignature);
  auto honest = testing::MakeToken(Algorithm::kHS256, R"({"alg":"HS256"})", Payload(), nullptr,
                                   options.hmac_secret);
  EXPECT_TRUE(with_secret.Verify(honest, &jwks_, system_clock::time_point(seconds(kNow))));
}

TEST_F(JwtVerifierTest, AnAlgorithmNoKeyFitsIsRefused) {
  // ES384 by a P-256 key: no key of the set fits it.
  auto token =
      testing::MakeToken(Algorithm::kES256, R"({"alg":"ES384","kid":"ec"})", Payload(), ec_raw_);
  EXPECT_EQ(ErrorOf(token), JwtError::kNoFittingKey);
  // RS256 naming the EC key's kid.
  EXPECT_EQ(ErrorOf(Rs256(Payload(), "ec")), JwtError::kNoFittingKey);
}

TEST_F(JwtVerifierTest, AnAlgorithmTheProviderDoesNotListIsRefused) {
  JwtOptions options = verifier_->options();
  options.algorithms = {Algorithm::kES256};
  JwtVerifier only_es256(options);
  auto result =
      only_es256.Verify(Rs256(Payload()), &jwks_, system_clock::time_point(seconds(kNow)));
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().error, JwtError::kAlgorithm);
}

TEST_F(JwtVerifierTest, ExpiryAndNotBeforeWithSkew) {
  EXPECT_TRUE(Verify(Rs256(Payload(kNow - 29))));  // within the 30 s skew
  EXPECT_EQ(ErrorOf(Rs256(Payload(kNow - 30))), JwtError::kExpired);
  EXPECT_EQ(ErrorOf(Rs256(Payload(kNow - 3600))), JwtError::kExpired);
  EXPECT_EQ(ErrorOf(Rs256(R"({"iss":"https://idp.example","aud":"api"})")), JwtError::kExpired);
  EXPECT_EQ(ErrorOf(Rs256(R"({"iss":"https://idp.example","aud":"api","exp":"soon"})")),
            JwtError::kExpired);
  EXPECT_TRUE(Verify(Rs256(Payload(kNow + 300, fmt::format(R"(,"nbf":{})", kNow + 29)))));
  EXPECT_EQ(ErrorOf(Rs256(Payload(kNow + 300, fmt::format(R"(,"nbf":{})", kNow + 31)))),
            JwtError::kNotYetValid);
  EXPECT_TRUE(Verify(Rs256(Payload(kNow + 300, R"(,"nbf":1.5e9)"))));
}

TEST_F(JwtVerifierTest, WrongIssuerOrAudienceIsRefused) {
  EXPECT_EQ(ErrorOf(Rs256(R"({"iss":"https://evil.example","aud":"api","exp":1800000300})")),
            JwtError::kIssuer);
  EXPECT_EQ(ErrorOf(Rs256(R"({"aud":"api","exp":1800000300})")), JwtError::kIssuer);
  EXPECT_EQ(ErrorOf(Rs256(R"({"iss":"https://idp.example","aud":"nope","exp":1800000300})")),
            JwtError::kAudience);
  EXPECT_EQ(ErrorOf(Rs256(R"({"iss":"https://idp.example","exp":1800000300})")),
            JwtError::kAudience);
}

TEST_F(JwtVerifierTest, BadSignatureIsRefused) {
  auto other = testing::MakeRsaKey();
  auto token = testing::MakeToken(Algorithm::kRS256, R"({"alg":"RS256","kid":"rsa"})", Payload(),
                                  other.get());
  EXPECT_EQ(ErrorOf(token), JwtError::kSignature);
  // A good token whose payload was swapped for another (an expired one's, say).
  std::string good = Rs256(Payload());
  std::string swapped = good.substr(0, good.find('.') + 1) +
                        Base64UrlEncode(Payload(kNow + 99999)) + good.substr(good.rfind('.'));
  EXPECT_EQ(ErrorOf(swapped), JwtError::kSignature);
}

TEST_F(JwtVerifierTest, UnknownKidIsRefused) {
  EXPECT_EQ(ErrorOf(Rs256(Payload(), "rotated-away")), JwtError::kUnknownKid);
  auto none = verifier_->Verify(Rs256(Payload()), nullptr, system_clock::time_point(seconds(kNow)));
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().error, JwtError::kUnknownKid);
}

TEST_F(JwtVerifierTest, CritIsRefused) {
  auto token =
      testing::MakeToken(Algorithm::kRS256, R"({"alg":"RS256","kid":"rsa","crit":["exp"],"exp":1})",
                         Payload(), rsa_raw_);
  EXPECT_EQ(ErrorOf(token), JwtError::kCrit);
}

TEST_F(JwtVerifierTest, TruncatedAndMalformedTokensAreRefused) {
  const std::string good = Rs256(Payload());
  EXPECT_EQ(ErrorOf(good.substr(0, good.size() - 10)), JwtError::kSignature);
  EXPECT_EQ(ErrorOf(good.substr(0, good.rfind('.'))), JwtError::kMalformed);
  EXPECT_EQ(ErrorOf(good.substr(0, 20)), JwtError::kMalformed);
  EXPECT_EQ(ErrorOf(""), JwtError::kMalformed);
  EXPECT_EQ(ErrorOf("Bearer " + good), JwtError::kMalformed);
  // Signed, but the payload is not a JSON object.
  EXPECT_EQ(ErrorOf(Rs256("[1,2]")), JwtError::kMalformed);
  EXPECT_EQ(ErrorOf(Rs256("not json")), JwtError::kMalformed);
}

}  // namespace
}  // namespace ferry::auth
