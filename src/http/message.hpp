// The parsed head of an HTTP/1.x request or response, as the codec hands it to the proxy.
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

struct RequestHead {
  std::string method;  // "GET"
  std::string target;  // "/api/catalog/items?page=2" (origin form)
  int version_minor = 1;
  Headers headers;
  BodyFraming framing = BodyFraming::kNone;
  std::uint64_t content_length = 0;
  bool keep_alive = true;        // the client wants the connection kept open
  bool expect_continue = false;  // Expect: 100-continue

  std::string_view path() const { return TargetPath(target); }
  std::string_view query() const { return TargetQuery(target); }
  // Back to a default head, keeping the storage of its strings and headers for the next one.
  void Clear();
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
