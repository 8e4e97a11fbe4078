// The parser's fast path for the common request head: a plain, strict subset of HTTP/1.1 read
// in one pass, with no callbacks and no per-field copies. Anything outside the subset is not an
// error here: the caller hands the whole head to llhttp instead, which then accepts or rejects
// it exactly as it always did. So the subset only has to be a subset of what llhttp accepts,
// with the same result; the http1 fuzz target checks that on every input (tests/fuzz).
//
// The subset: a method from GET POST PUT DELETE HEAD OPTIONS PATCH; an origin-form target of
// RFC 3986 path and query characters (no fragment, no `*`, no absolute form); HTTP/1.0 or
// HTTP/1.1; CRLF line ends; header names of token characters directly followed by `:`; values
// of visible ASCII, spaces and tabs, not empty and without trailing white space; at most one
// Content-Length (digits only), at most one Connection (exactly `close` or `keep-alive`), at
// most one Expect (without a comma), no
// Transfer-Encoding, Upgrade or Proxy-Connection.
// Thread safety: a pure function.
#pragma once

#include <cstddef>
#include <string_view>

#include "http/message.hpp"

namespace ferry::http {

// If `data` starts with a whole request head (through its blank line) in the subset, fills
// `out` (its fields from scratch; headers appended to out->headers, which the caller cleared)
// and returns the head's size; otherwise returns 0 and `out` is to be cleared by the caller.
std::size_t ParseSimpleRequestHead(std::string_view data, Http1RequestHead* out);

}  // namespace ferry::http
