// JSON Web Keys (RFC 7517) and key sets, as a provider publishes them at its JWKS URL: RSA (n, e),
// EC (P-256, P-384, P-521: x, y, checked to be on the curve), OKP (Ed25519: x) and oct (k) keys,
// with their `kid`, `alg` and `use`. Only public members are read (a `d` is ignored). Keys are
// turned into OpenSSL keys once, when the set is parsed; verifying then costs no parsing.
// A set's keys that Ferry cannot use (another kty or curve, `use: enc`, an unknown `alg`, an RSA
// modulus under 2048 bits, bad material) are skipped and counted, not fatal: providers publish
// encryption keys beside signing keys. Input is untrusted (fuzzed by tests/fuzz/jwks_fuzz.cpp).
// Thread safety: parsing is pure; a parsed Jwks is immutable and shared by all workers.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/algorithm.hpp"
#include "core/result.hpp"

struct evp_pkey_st;  // OpenSSL's EVP_PKEY, kept out of this header

namespace ferry::auth {

inline constexpr std::size_t kMaxJwksBytes = 1024 * 1024;  // a larger JWKS is refused whole
inline constexpr std::size_t kMaxJwksKeys = 100;           // keys past this are refused whole

enum class KeyType { kRsa, kEc, kOkp, kOct };
enum class Curve { kNone, kP256, kP384, kP521, kEd25519 };

struct Jwk {
  KeyType type = KeyType::kRsa;
  Curve curve = Curve::kNone;        // EC and OKP keys only
  std::string kid;                   // "" when the JWK has none
  std::optional<Algorithm> alg;      // the JWK's `alg`: the key is used with it alone
  std::shared_ptr<evp_pkey_st> key;  // RSA, EC, OKP: the public key
  std::string secret;                // oct: the key bytes
};

struct Jwks {
  std::vector<Jwk> keys;
  std::size_t skipped = 0;  // keys of the set that were not usable
  std::string first_skip;   // why the first of them was skipped (for the log)
};

// One JWK (a JSON object). kInvalidArgument says why it is not a usable key.
Result<Jwk> ParseJwk(std::string_view json);
// A JWK Set: a JSON object with a `keys` array. kInvalidArgument if the text is not one (or is
// over the limits above); unusable keys inside it are skipped.
Result<Jwks> ParseJwks(std::string_view json);

}  // namespace ferry::auth
