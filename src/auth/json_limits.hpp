// The one way this area reads JSON from untrusted bytes (JOSE headers, JWT payloads, JWKS):
// Boost.JSON with a size cap and a shallow nesting limit, and the top level must be an object.
// Boost.JSON keeps the last of duplicate member names, which RFC 7515 section 4 allows.
#pragma once

#include <boost/json/value.hpp>
#include <cstddef>
#include <string_view>

#include "core/result.hpp"

namespace ferry::auth {

inline constexpr std::size_t kMaxJsonDepth = 16;

// The JSON object `text` is; kInvalidArgument if it is longer than max_bytes, not JSON, nested
// deeper than kMaxJsonDepth, or not an object.
Result<boost::json::value> ParseJsonObject(std::string_view text, std::size_t max_bytes);

}  // namespace ferry::auth
