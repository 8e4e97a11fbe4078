// libFuzzer target: arbitrary bytes as a bearer token, the way the jwt filter hands it over —
// JWS compact parsing (base64url, the JOSE header's JSON) and then the whole JWT check against
// a fixed key set (RFC 7515's A.3 EC key and an oct key) and an HMAC secret. No crash, and more:
// a part that decodes re-encodes to the same text (strict base64url: one text per byte string),
// and a token that passes must carry a signature that verifies on its own.
// Seed corpus: tests/fuzz/corpus/jose/ (the RFC 7515 and 8037 examples, forged and broken
// tokens).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/base64url.hpp"
#include "auth/jwk.hpp"
#include "auth/jws.hpp"
#include "auth/jwt_verifier.hpp"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

const ferry::auth::Jwks& Keys() {
  static const ferry::auth::Jwks keys =
      *ferry::auth::ParseJwks(R"({"keys":[{"kty":"EC","crv":"P-256","kid":"a3",)"
                              R"("x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",)"
                              R"("y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},)"
                              R"({"kty":"oct","kid":"o","k":"c2VjcmV0"}]})");
  return keys;
}

const ferry::auth::JwtVerifier& Verifier() {
  static const ferry::auth::JwtVerifier verifier([] {
    ferry::auth::JwtOptions options;
    options.issuer = "joe";
    options.algorithms.assign(ferry::auth::AsymmetricAlgorithms().begin(),
                              ferry::auth::AsymmetricAlgorithms().end());
    options.algorithms.push_back(ferry::auth::Algorithm::kHS256);
    options.hmac_secret = "secret";
    return options;
  }());
  return verifier;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  if (auto decoded = ferry::auth::Base64UrlDecode(token)) {
    Check(ferry::auth::Base64UrlEncode(*decoded) == token);
  }
  if (auto jws = ferry::auth::ParseJws(token)) {
    const std::string_view input = jws->signing_input;
    Check(input.size() < token.size() && token.substr(0, input.size()) == input);
    Check(ferry::auth::Base64UrlEncode(jws->signature) == token.substr(input.size() + 1));
  }
  // Valid in 2011, so the RFC examples get as far as their claims.
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'300'000'000));
  auto verified = Verifier().Verify(token, &Keys(), now);
  if (verified) {
    auto jws = ferry::auth::ParseJws(token);
    Check(jws.has_value());
    auto algorithm = ferry::auth::AlgorithmFromName(jws->header.alg);
    Check(algorithm.has_value());
    if (ferry::auth::IsHmac(*algorithm)) {
      Check(ferry::auth::VerifyHmac(*algorithm, "secret", jws->signing_input, jws->signature));
    } else {
      Check(ferry::auth::VerifySignature(*algorithm, Keys().keys[0], jws->signing_input,
                                         jws->signature));
    }
  }
  return 0;
}
