// libFuzzer target: arbitrary bytes as a JWKS document, as a provider's URL or file serves it
// (src/auth/jwk.hpp). No crash; the limits hold (at most kMaxJwksKeys keys, every key accounted
// for as kept or skipped); each kept key is well formed (an OpenSSL key, or an oct secret) and
// can be asked whether it fits, and to verify a signature, for every algorithm.
// Seed corpus: tests/fuzz/corpus/jwks/ (key sets of every key type, broken keys and sets).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "auth/algorithm.hpp"
#include "auth/jwk.hpp"
#include "auth/jws.hpp"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

constexpr ferry::auth::Algorithm kAll[] = {
    ferry::auth::Algorithm::kRS256, ferry::auth::Algorithm::kRS384, ferry::auth::Algorithm::kRS512,
    ferry::auth::Algorithm::kPS256, ferry::auth::Algorithm::kPS384, ferry::auth::Algorithm::kPS512,
    ferry::auth::Algorithm::kES256, ferry::auth::Algorithm::kES384, ferry::auth::Algorithm::kES512,
    ferry::auth::Algorithm::kEdDSA, ferry::auth::Algorithm::kHS256, ferry::auth::Algorithm::kHS384,
    ferry::auth::Algorithm::kHS512,
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto jwks = ferry::auth::ParseJwks(text);
  if (!jwks) return 0;
  Check(jwks->keys.size() + jwks->skipped <= ferry::auth::kMaxJwksKeys);
  Check(jwks->skipped == 0 || !jwks->first_skip.empty());
  const std::string signature(132, '\x01');
  for (const ferry::auth::Jwk& key : jwks->keys) {
    Check(key.type == ferry::auth::KeyType::kOct ? !key.secret.empty() : key.key != nullptr);
    for (const ferry::auth::Algorithm algorithm : kAll) {
      const bool fits = ferry::auth::KeyFits(algorithm, key);
      if (key.alg && *key.alg != algorithm) Check(!fits);
      const bool verified = ferry::auth::VerifySignature(algorithm, key, "a.b", signature);
      Check(!verified || fits);
    }
  }
  return 0;
}
