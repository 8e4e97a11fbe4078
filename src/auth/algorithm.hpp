// The JWS signature algorithms Ferry verifies (RFC 7518 section 3, RFC 8037 section 3.1). `none`
// is not one of them: a token that names it is refused like any unknown algorithm.
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace ferry::auth {

enum class Algorithm {
  kRS256,  // RSASSA-PKCS1-v1_5 with SHA-256 (and so on); RSA keys of at least 2048 bits
  kRS384,
  kRS512,
  kPS256,  // RSASSA-PSS, MGF1 with the same hash, salt as long as the hash
  kPS384,
  kPS512,
  kES256,  // ECDSA P-256 with SHA-256; the signature is R||S, 64 bytes (not DER)
  kES384,  // P-384, 96 bytes
  kES512,  // P-521 with SHA-512, 132 bytes
  kEdDSA,  // Ed25519 (RFC 8037), 64 bytes
  kHS256,  // HMAC: only with a secret configured for the provider, never a JWKS key
  kHS384,
  kHS512,
};

// The algorithm of a JOSE `alg` name (case-sensitive, as RFC 7515 says); nullopt otherwise.
std::optional<Algorithm> AlgorithmFromName(std::string_view name);
std::string_view AlgorithmName(Algorithm algorithm);
bool IsHmac(Algorithm algorithm);
// Every algorithm that is not HMAC: what a provider accepts when it lists none.
std::span<const Algorithm> AsymmetricAlgorithms();

}  // namespace ferry::auth
