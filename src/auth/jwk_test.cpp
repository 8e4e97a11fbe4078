#include "auth/jwk.hpp"

#include <gtest/gtest.h>

#include "auth/test_keys.hpp"

namespace ferry::auth {
namespace {

TEST(Jwks, ReadsEveryKeyTypeWithKidAlgAndUse) {
  auto rsa = testing::MakeRsaKey();
  auto ec = testing::MakeEcKey("P-384");
  auto ed = testing::MakeEd25519Key();
  const std::string text =
      R"({"keys":[)" + testing::PublicJwk(rsa.get(), R"("kid":"r","alg":"RS256","use":"sig")") +
      "," + testing::PublicJwk(ec.get(), R"("kid":"e")") + "," +
      testing::PublicJwk(ed.get(), R"("kid":"d")") + R"(,{"kty":"oct","k":"c2VjcmV0"}]})";
  auto jwks = ParseJwks(text);
  ASSERT_TRUE(jwks) << jwks.error().message();
  ASSERT_EQ(jwks->keys.size(), 4u);
  EXPECT_EQ(jwks->skipped, 0u);
  EXPECT_EQ(jwks->keys[0].type, KeyType::kRsa);
  EXPECT_EQ(jwks->keys[0].kid, "r");
  EXPECT_EQ(jwks->keys[0].alg, Algorithm::kRS256);
  EXPECT_EQ(jwks->keys[1].curve, Curve::kP384);
  EXPECT_FALSE(jwks->keys[1].alg);
  EXPECT_EQ(jwks->keys[2].curve, Curve::kEd25519);
  EXPECT_EQ(jwks->keys[3].secret, "secret");
}

TEST(Jwks, SkipsKeysItCannotUse) {
  auto rsa = testing::MakeRsaKey();
  auto small = testing::MakeRsaKey(1024);
  auto x448 = R"({"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})";
  const std::string text = R"({"keys":[)" + testing::PublicJwk(rsa.get(), R"("use":"enc")") + "," +
                           testing::PublicJwk(rsa.get(), R"("alg":"RSA-OAEP")") + "," +
                           testing::PublicJwk(small.get()) + "," + x448 +
                           R"(,{"kty":"EC","crv":"P-256","x":"AA","y":"AA"},{"kty":"XYZ"},5,)" +
                           R"({"kty":"RSA","n":"=","e":"AQAB"},)" +
                           testing::PublicJwk(rsa.get(), R"("kid":"ok")") + "]}";
  auto jwks = ParseJwks(text);
  ASSERT_TRUE(jwks);
  ASSERT_EQ(jwks->keys.size(), 1u);
  EXPECT_EQ(jwks->keys[0].kid, "ok");
  EXPECT_EQ(jwks->skipped, 8u);
  EXPECT_NE(jwks->first_skip.find("enc"), std::string::npos);
}

TEST(Jwks, EcPointOffTheCurveIsRefused) {
  auto ec = testing::MakeEcKey("P-256");
  std::string jwk = testing::PublicJwk(ec.get());
  auto good = ParseJwk(jwk);
  ASSERT_TRUE(good);
  // Change the last character of y: the point leaves the curve.
  const std::size_t y_end = jwk.rfind('"');
  jwk[y_end - 1] = jwk[y_end - 1] == 'A' ? 'E' : 'A';
  EXPECT_FALSE(ParseJwk(jwk));
}

TEST(Jwks, RefusesWhatIsNotASet) {
  EXPECT_FALSE(ParseJwks(""));
  EXPECT_FALSE(ParseJwks("[]"));
  EXPECT_FALSE(ParseJwks("{}"));
  EXPECT_FALSE(ParseJwks(R"({"keys":{}})"));
  EXPECT_FALSE(ParseJwks(R"({"keys":[]} x)"));
  std::string many = R"({"keys":[)";
  for (int i = 0; i < 101; ++i) many += std::string(i ? "," : "") + "{}";
  EXPECT_FALSE(ParseJwks(many + "]}"));
  EXPECT_FALSE(ParseJwks(std::string(kMaxJwksBytes + 1, ' ')));
  auto empty = ParseJwks(R"({"keys":[]})");
  ASSERT_TRUE(empty);
  EXPECT_TRUE(empty->keys.empty());
}

}  // namespace
}  // namespace ferry::auth
