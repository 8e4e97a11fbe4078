// base64url without padding (RFC 7515 section 2, RFC 4648 section 5), the encoding of every
// part of a JWS and of JWK key material. Decoding is strict: only the 64 URL-safe characters,
// no '=' padding, no whitespace, and the unused low bits of the last character must be zero, so
// each byte string has exactly one accepted text. Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace ferry::auth {

// The bytes `text` encodes; nullopt if it is not strict unpadded base64url.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// The unpadded base64url text of `bytes`.
std::string Base64UrlEncode(std::string_view bytes);

}  // namespace ferry::auth
