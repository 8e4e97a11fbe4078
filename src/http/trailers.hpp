// Trailer fields (RFC 9110 6.5): which fields may travel as trailers, and their HTTP/1.1 wire
// form (after the last chunk of a chunked body). Every codec uses these, both ways, so a
// trailer never frames, routes or authenticates a message: the fields that may not be trailers
// are dropped where they are received and again where they are sent.
// Thread safety: pure functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http/headers.hpp"

namespace ferry::http {

// Bounds on one message's trailers (the parser refuses more; HTTP/2 drops the excess).
inline constexpr std::size_t kMaxTrailerBytes = 16 * 1024;
inline constexpr std::size_t kMaxTrailerFields = 64;

// False for the fields that may not be trailers: pseudo-fields (":status"), framing
// (content-length, transfer-encoding, trailer), routing (host), connection-specific ones
// (connection, keep-alive, proxy-connection, te, upgrade, http2-settings), and the controls
// and credentials RFC 9110 6.5.1 names (authorization, proxy-authorization,
// proxy-authenticate, www-authenticate, cookie, set-cookie, content-type, content-encoding,
// content-range, expect, max-forwards, range, cache-control).
bool AllowedInTrailer(std::string_view name);
// Adds the field unless AllowedInTrailer says no.
void AddTrailer(Headers& trailers, std::string_view name, std::string_view value);
// The end of a chunked body: "0\r\n", the allowed trailer fields (none if null), "\r\n".
void AppendLastChunk(std::string& out, const Headers* trailers);

}  // namespace ferry::http
