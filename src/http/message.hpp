// Request and response heads: the framing-free request head every handler sees, and the parsed
// heads of HTTP/1.x requests and responses, as the codec hands them out.
// Thread safety: value types owned by one exchange. Views from headers are valid until the
// headers are next changed.
#pragma once

#include <cstdint>
#include <string>

#include "http/headers.hpp"

namespace ferry::http {

// How the message body is delimited on the wire.
enum class BodyFraming {
  kNone,           // no body
  kContentLength,  // exactly content_length bytes
  kChunked,        // Transfer-Encoding: chunked
  kUntilClose,     // responses only: the body runs until the connection closes
};

// A request target's path (without the query) and its query (after '?', may be empty).
std::string_view TargetPath(std::string_view target);
std::string_view TargetQuery(std::string_view target);

// A request head as routing, filters and handlers see it, whatever the protocol: method,
// target and fields, and no framing. HTTP/1's framing (version, Content-Length and
// Transfer-Encoding as framing, Connection, Expect) stays with the codec (Http1RequestHead); an
// HTTP/2 stream fills the same head from its pseudo-header fields.
struct RequestHead {
  std::string method;  // "GET"
  std::string target;  // "/api/catalog/items?page=2" (origin form)
  Headers headers;

  std::string_view path() const { return TargetPath(target); }
  std::string_view query() const { return TargetQuery(target); }
  // Back to a default head, keeping the storage of its strings and headers for the next one.
  void Clear();
};

// What the HTTP/1.x parser reads of a request: the head and how its body is framed.
struct Http1RequestHead : RequestHead {
  int version_minor = 1;
  BodyFraming framing = BodyFraming::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;        // the client wants the connection kept open
  bool expect_continue = false;  // Expect: 100-continue

  void Clear();  // as RequestHead::Clear
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  Headers headers;
  BodyFraming framing = BodyFraming::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;  // the upstream lets the connection be reused
  void Clear();            // as RequestHead::Clear
};

// The standard reason phrase for a status code ("Not Found"), or "Unknown".
std::string_view ReasonPhrase(int status);

}  // namespace ferry::http
