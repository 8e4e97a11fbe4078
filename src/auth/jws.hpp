// JWS compact serialization (RFC 7515 section 7.1): BASE64URL(header).BASE64URL(payload).
// BASE64URL(signature), parsed with bounded sizes, and signature verification with OpenSSL 3
// for the algorithms of algorithm.hpp. This layer checks signatures only; what a JWT's claims
// must say is jwt_verifier.hpp's. Input is untrusted (fuzzed by tests/fuzz/jose_fuzz.cpp).
// Thread safety: pure functions; Jwk keys are only read.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "auth/algorithm.hpp"
#include "auth/jwk.hpp"
#include "core/result.hpp"

namespace ferry::auth {

inline constexpr std::size_t kMaxTokenBytes = 16 * 1024;  // a longer token is refused unread

// The members of a JOSE header that Ferry acts on. `jku`, `x5u`, `jwk` and `x5c` are ignored on
// purpose: the keys come from the provider's configured JWKS, never from the token.
struct JwsHeader {
  std::string alg;        // as written; may name an algorithm Ferry does not have
  std::string kid;        // "" when absent
  bool has_crit = false;  // `crit` was present: Ferry understands no extension, so it refuses
};

struct Jws {
  JwsHeader header;
  std::string_view signing_input;  // "header.payload" inside the parsed token
  std::string payload;             // decoded
  std::string signature;           // decoded
};

// The parts of a compact JWS. kInvalidArgument if it is longer than kMaxTokenBytes, has other
// than three parts, a part is not strict base64url, the header is not a JSON object, or `alg`
// is missing or not a string (`kid` not a string). The result points into `token`.
Result<Jws> ParseJws(std::string_view token);

// Whether `key` may verify `algorithm`: its kty (and curve) is the algorithm's, and its own
// `alg`, when it has one, is the same. HMAC fits only an oct key.
bool KeyFits(Algorithm algorithm, const Jwk& key);

// True if `signature` is a valid signature of `input` by `key` with `algorithm`. False when the
// key does not fit the algorithm, the signature has the wrong length (ECDSA R||S must be exactly
// twice the curve's size) or does not verify.
bool VerifySignature(Algorithm algorithm, const Jwk& key, std::string_view input,
                     std::string_view signature);

// HMAC verification with a configured secret (constant-time comparison).
bool VerifyHmac(Algorithm algorithm, std::string_view secret, std::string_view input,
                std::string_view signature);

}  // namespace ferry::auth
