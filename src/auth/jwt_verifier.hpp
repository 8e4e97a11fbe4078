// A JWT (RFC 7519) checked the way one provider is configured: the JWS signature with a key of
// the provider's JWKS (or its HMAC secret), the algorithm allowed and fitting the key, and the
// claims `iss`, `aud`, `exp` (required) and `nbf` against the time with clock skew. Refusals
// carry a stable reason (the metric's label) and a message for error_description.
// Thread safety: a JwtVerifier is immutable; Verify may run on any thread at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>
#include <vector>

#include "auth/algorithm.hpp"
#include "auth/jwk.hpp"

namespace ferry::auth {

enum class JwtError {
  kMalformed,     // not a compact JWS, or the payload is not a JSON object
  kAlgorithm,     // `none`, an unknown alg, or one the provider does not accept
  kCrit,          // a `crit` header: Ferry understands no extension
  kUnknownKid,    // no JWKS key has the token's kid (worth a JWKS re-fetch)
  kNoFittingKey,  // no JWKS key fits the algorithm (kty, crv, the JWK's alg)
  kSignature,     // the signature does not verify
  kExpired,       // exp is past (with skew), or missing
  kNotYetValid,   // nbf is ahead (with skew)
  kIssuer,        // iss is not the provider's
  kAudience,      // aud holds none of the provider's audiences
};
inline constexpr std::size_t kJwtErrorCount = 10;  // the values above

// snake_case name of a reason ("bad_signature"), the metric label.
std::string_view JwtErrorName(JwtError error);

struct JwtFailure {
  JwtError error;
  std::string message;  // for people: says which check failed, never echoes secrets
};

using Claims = std::vector<std::pair<std::string, std::string>>;

struct VerifiedJwt {
  // String, number and boolean claims as text; an array claim one pair per scalar element;
  // object and null claims are left out.
  Claims claims;
};

struct JwtOptions {
  std::string issuer;                  // "" = not checked
  std::vector<std::string> audiences;  // empty = not checked
  std::vector<Algorithm> algorithms;   // accepted; an HMAC one also needs hmac_secret
  std::string hmac_secret;             // the provider's secret; never a JWKS key
  std::chrono::seconds clock_skew{60};
};

class JwtVerifier {
 public:
  explicit JwtVerifier(JwtOptions options);

  // Checks `token` with the keys of `jwks` (may be null when only HMAC is configured) at time
  // `now`.
  tl::expected<VerifiedJwt, JwtFailure> Verify(std::string_view token, const Jwks* jwks,
                                               std::chrono::system_clock::time_point now) const;

  const JwtOptions& options() const { return options_; }

 private:
  bool Accepts(Algorithm algorithm) const;

  JwtOptions options_;
};

}  // namespace ferry::auth
