// The JWS layer against the published examples: RFC 7515 appendix A.1 (HS256), A.2 (RS256),
// A.3 (ES256), A.4 (ES512) and RFC 8037 appendix A.4 (Ed25519), typed in from the RFCs (the
// RSA and P-521 public keys as JWKs of the RFCs' n/e and x/y). Their tokens have long expired:
// only signatures are checked here.
#include <gtest/gtest.h>

#include <string>

#include "auth/base64url.hpp"
#include "auth/jwk.hpp"
#include "auth/jws.hpp"
#include "auth/test_keys.hpp"

namespace ferry::auth {
namespace {

constexpr std::string_view kA1Token =
    "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
constexpr std::string_view kA1Jwk =
    R"({"kty":"oct","k":"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow"})";

constexpr std::string_view kA2Token =
    "eyJhbGciOiJSUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5"
    "jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1"
    "L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYE"
    "UipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
constexpr std::string_view kA2Jwk =
    R"({"kty":"RSA","n":"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJ)"
    R"(rcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-b)"
    R"(Sf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG)"
    R"(4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ",)"
    R"("e":"AQAB"})";

constexpr std::string_view kA3Token =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
constexpr std::string_view kA3Jwk =
    R"({"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
    R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"})";

constexpr std::string_view kA4Token =
    "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA."
    "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8G"
    "aSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
constexpr std::string_view kA4Jwk =
    R"({"kty":"EC","crv":"P-521",)"
    R"("x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",)"
    R"("y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2"})";

constexpr std::string_view kEd25519Token =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
constexpr std::string_view kEd25519Jwk =
    R"({"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"})";

// Parses the token and the key, and verifies with the token's own alg.
bool Verifies(std::string_view token, std::string_view jwk_text) {
  auto jws = ParseJws(token);
  auto jwk = ParseJwk(jwk_text);
  if (!jws || !jwk) return false;
  auto algorithm = AlgorithmFromName(jws->header.alg);
  return algorithm && VerifySignature(*algorithm, *jwk, jws->signing_input, jws->signature);
}

// The token with one character of the given part changed.
std::string Flip(std::string_view token, int part) {
  std::string out(token);
  std::size_t at = 0;
  for (int i = 0; i < part; ++i) at = out.find('.', at) + 1;
  out[at + 2] = out[at + 2] == 'A' ? 'B' : 'A';
  return out;
}

TEST(Rfc7515, A1Hs256Verifies) {
  EXPECT_TRUE(Verifies(kA1Token, kA1Jwk));
  EXPECT_FALSE(Verifies(Flip(kA1Token, 1), kA1Jwk));
  EXPECT_FALSE(Verifies(Flip(kA1Token, 2), kA1Jwk));
}

TEST(Rfc7515, A1PayloadIsTheRfcs) {
  auto jws = ParseJws(kA1Token);
  ASSERT_TRUE(jws);
  EXPECT_EQ(jws->header.alg, "HS256");
  EXPECT_EQ(jws->payload,
            "{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}");
}

TEST(Rfc7515, A2Rs256Verifies) {
  EXPECT_TRUE(Verifies(kA2Token, kA2Jwk));
  EXPECT_FALSE(Verifies(Flip(kA2Token, 1), kA2Jwk));
  EXPECT_FALSE(Verifies(Flip(kA2Token, 2), kA2Jwk));
}

TEST(Rfc7515, A3Es256Verifies) {
  EXPECT_TRUE(Verifies(kA3Token, kA3Jwk));
  EXPECT_FALSE(Verifies(Flip(kA3Token, 1), kA3Jwk));
  EXPECT_FALSE(Verifies(Flip(kA3Token, 2), kA3Jwk));
}

TEST(Rfc7515, A4Es512Verifies) {
  EXPECT_TRUE(Verifies(kA4Token, kA4Jwk));
  EXPECT_FALSE(Verifies(Flip(kA4Token, 1), kA4Jwk));
}

TEST(Rfc8037, A4Ed25519Verifies) {
  EXPECT_TRUE(Verifies(kEd25519Token, kEd25519Jwk));
  auto jws = ParseJws(kEd25519Token);
  ASSERT_TRUE(jws);
  EXPECT_EQ(jws->payload, "Example of Ed25519 signing");
  EXPECT_FALSE(Verifies(Flip(kEd25519Token, 1), kEd25519Jwk));
  EXPECT_FALSE(Verifies(Flip(kEd25519Token, 2), kEd25519Jwk));
}

TEST(Jws, KeyOfAnotherTypeNeverVerifies) {
  auto rsa = ParseJwk(kA2Jwk);
  auto ec = ParseJwk(kA3Jwk);
  auto jws = ParseJws(kA3Token);
  ASSERT_TRUE(rsa && ec && jws);
  EXPECT_FALSE(VerifySignature(Algorithm::kES256, *rsa, jws->signing_input, jws->signature));
  EXPECT_FALSE(KeyFits(Algorithm::kES384, *ec));  // P-256 key, P-384 algorithm
  EXPECT_FALSE(KeyFits(Algorithm::kHS256, *rsa));
  EXPECT_FALSE(KeyFits(Algorithm::kRS256, *ec));
  EXPECT_TRUE(KeyFits(Algorithm::kPS256, *rsa));
}

TEST(Jws, KeyWithAnotherAlgDoesNotFit) {
  std::string jwk(kA2Jwk);
  jwk.insert(jwk.size() - 1, R"(,"alg":"PS256")");
  auto key = ParseJwk(jwk);
  ASSERT_TRUE(key);
  EXPECT_FALSE(KeyFits(Algorithm::kRS256, *key));
  EXPECT_FALSE(Verifies(kA2Token, jwk));
  EXPECT_TRUE(KeyFits(Algorithm::kPS256, *key));
}

TEST(Jws, EcdsaSignatureOfTheWrongLengthOrDerIsRefused) {
  auto key = ParseJwk(kA3Jwk);
  auto jws = ParseJws(kA3Token);
  ASSERT_TRUE(key && jws);
  std::string longer = jws->signature + std::string(1, '\0');
  EXPECT_FALSE(VerifySignature(Algorithm::kES256, *key, jws->signing_input, longer));
  EXPECT_FALSE(
      VerifySignature(Algorithm::kES256, *key, jws->signing_input, jws->signature.substr(0, 63)));
  // The same signature as DER, which JOSE does not allow.
  auto ec = testing::MakeEcKey("P-256");
  std::string raw = testing::Sign(Algorithm::kES256, ec.get(), "input");
  auto own = ParseJwk(testing::PublicJwk(ec.get()));
  ASSERT_TRUE(own);
  EXPECT_TRUE(VerifySignature(Algorithm::kES256, *own, "input", raw));
  EXPECT_FALSE(VerifySignature(Algorithm::kES256, *own, "other", raw));
}

TEST(Jws, GeneratedKeysOfEveryAlgorithmVerify) {
  auto rsa = testing::MakeRsaKey();
  auto p256 = testing::MakeEcKey("P-256");
  auto p384 = testing::MakeEcKey("P-384");
  auto p521 = testing::MakeEcKey("P-521");
  auto ed = testing::MakeEd25519Key();
  struct Case {
    Algorithm algorithm;
    EVP_PKEY* key;
  };
  const Case cases[] = {
      {Algorithm::kRS256, rsa.get()},  {Algorithm::kRS384, rsa.get()},
      {Algorithm::kRS512, rsa.get()},  {Algorithm::kPS256, rsa.get()},
      {Algorithm::kPS384, rsa.get()},  {Algorithm::kPS512, rsa.get()},
      {Algorithm::kES256, p256.get()}, {Algorithm::kES384, p384.get()},
      {Algorithm::kES512, p521.get()}, {Algorithm::kEdDSA, ed.get()},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(AlgorithmName(c.algorithm)));
    const std::string header = R"({"alg":")" + std::string(AlgorithmName(c.algorithm)) + "\"}";
    const std::string token = testing::MakeToken(c.algorithm, header, "{}", c.key);
    EXPECT_TRUE(Verifies(token, testing::PublicJwk(c.key)));
    EXPECT_FALSE(Verifies(Flip(token, 1), testing::PublicJwk(c.key)));
  }
}

TEST(Jws, RsPssAndPkcs1AreNotInterchangeable) {
  auto rsa = testing::MakeRsaKey();
  const std::string token =
      testing::MakeToken(Algorithm::kPS256, R"({"alg":"RS256"})", "{}", rsa.get());
  EXPECT_FALSE(Verifies(token, testing::PublicJwk(rsa.get())));
}

TEST(Jws, MalformedTokensAreRefused) {
  EXPECT_FALSE(ParseJws(""));
  EXPECT_FALSE(ParseJws("abc"));
  EXPECT_FALSE(ParseJws("a.b"));
  EXPECT_FALSE(ParseJws("a.b.c.d"));
  EXPECT_FALSE(ParseJws(std::string(kA3Token.substr(0, kA3Token.rfind('.')))));  // truncated
  EXPECT_FALSE(ParseJws(std::string(kA3Token) + "="));                           // padding
  EXPECT_FALSE(ParseJws(Base64UrlEncode("[1]") + ".e30.AA"));                    // not an object
  EXPECT_FALSE(ParseJws(Base64UrlEncode(R"({"alg":5})") + ".e30.AA"));
  EXPECT_FALSE(ParseJws(Base64UrlEncode(R"({"typ":"JWT"})") + ".e30.AA"));
  EXPECT_FALSE(ParseJws(Base64UrlEncode(R"({"alg":"RS256","kid":1})") + ".e30.AA"));
  EXPECT_FALSE(ParseJws(Base64UrlEncode(R"({"alg":"RS256"})") + ".e30.A+"));
  EXPECT_FALSE(ParseJws(std::string(kMaxTokenBytes + 1, 'a')));
  std::string deep = R"({"alg":"RS256","x":)" + std::string(40, '[') + std::string(40, ']') + "}";
  EXPECT_FALSE(ParseJws(Base64UrlEncode(deep) + ".e30.AA"));
  EXPECT_TRUE(ParseJws(Base64UrlEncode(R"({"alg":"RS256"})") + ".e30.AA"));
}

TEST(Jws, TheKeysOfTheTokenHeaderAreIgnored) {
  // A token that brings its own key (jwk), or points at one (jku, x5u), still needs a JWKS key.
  auto attacker = testing::MakeRsaKey();
  const std::string header =
      R"({"alg":"RS256","jwk":)" + testing::PublicJwk(attacker.get()) +
      R"(,"jku":"https://evil.example/jwks","x5u":"https://evil.example/c"})";
  const std::string token = testing::MakeToken(Algorithm::kRS256, header, "{}", attacker.get());
  auto jws = ParseJws(token);
  ASSERT_TRUE(jws);
  auto legit = ParseJwk(kA2Jwk);
  ASSERT_TRUE(legit);
  EXPECT_FALSE(VerifySignature(Algorithm::kRS256, *legit, jws->signing_input, jws->signature));
}

TEST(Base64Url, RoundTripsAndIsStrict) {
  for (std::string bytes : {"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\x00"}) {
    auto decoded = Base64UrlDecode(Base64UrlEncode(bytes));
    ASSERT_TRUE(decoded);
    EXPECT_EQ(*decoded, bytes);
  }
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
  EXPECT_FALSE(Base64UrlDecode("Zm9v="));  // padding
  EXPECT_FALSE(Base64UrlDecode("Zm+v"));   // base64, not base64url
  EXPECT_FALSE(Base64UrlDecode("Zm9 v"));  // whitespace
  EXPECT_FALSE(Base64UrlDecode("Z"));      // 1 mod 4
  EXPECT_FALSE(Base64UrlDecode("Zh"));     // non-zero unused bits ("f" is "Zg")
  EXPECT_TRUE(Base64UrlDecode("Zg"));
}

}  // namespace
}  // namespace ferry::auth
