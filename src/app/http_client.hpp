// A small blocking HTTP/1.1 client over POSIX sockets, for the CLI's bus commands and the
// example services: one request per connection (`Connection: close`), response bodies framed by
// Content-Length, chunked coding or the end of the connection, and one deadline for the whole
// exchange (connect, write, every read). No Asio, no shared state: thread-safe as long as
// callers do not share arguments. Failures are returned, never thrown: kInvalidArgument (bad
// URL), kUnavailable (cannot resolve or connect), kDeadlineExceeded, kConnectionClosed (the peer
// left mid-response), kUpstreamProtocol (not a valid HTTP/1.x response).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace ferry::app {

// An http:// URL as the client uses it: "http://127.0.0.1:8081/prefix".
struct Url {
  std::string host;         // a name or an IP; an IPv6 address without its brackets
  std::uint16_t port = 80;  // from the URL, else 80
  std::string path;         // "" or a prefix starting with '/' and not ending in one

  std::string HostHeader() const;  // "host:port", IPv6 in brackets
  std::string ToString() const;    // "http://host:port/path"
};

// "http://host[:port][/path]"; the scheme may be left out. https, user info, a query or a
// fragment are kInvalidArgument with a message that says why.
Result<Url> ParseUrl(std::string_view text);

// Percent-encodes everything but RFC 3986 unreserved characters, for one path segment or one
// query value.
std::string PercentEncode(std::string_view text);

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";  // as sent
  std::string target = "/";    // path and query, appended to the URL's path
  HeaderList headers;          // sent as given; Host, Content-Length, Connection are added
  std::string body;            // sent with Content-Length (also when empty, for POST and PUT)
};

struct HttpResponse {
  int status = 0;      // the final status (interim 1xx answers are skipped)
  HeaderList headers;  // names lowercased, in order
  std::string body;    // without chunk framing

  // The value of the first header with this lowercase name, or nullptr.
  const std::string* Find(std::string_view name) const;
};

// Reads one response incrementally from the bytes received so far. Pure logic, no I/O: Parse is
// called with the whole buffer each time more arrives (the buffer only grows) and does work
// proportional to the new bytes. Not thread-safe; one parser per response.
class ResponseParser {
 public:
  enum class State {
    kIncomplete,  // more bytes are needed
    kComplete,    // response() is whole
    kError,       // error() says why; the bytes are not a valid response
  };
  static constexpr std::size_t kMaxHeadBytes = 64 * 1024;

  // `head_request`: the request was HEAD, so the response has no body whatever it says.
  explicit ResponseParser(bool head_request = false) : head_request_(head_request) {}

  // `eof`: the peer has closed, so `received` is all there will be.
  State Parse(std::string_view received, bool eof);
  HttpResponse& response() { return response_; }
  const std::string& error() const { return error_; }

 private:
  enum class Framing { kNone, kLength, kChunked, kUntilClose };
  State Fail(std::string why);
  State ParseHead(std::string_view head);
  State ParseChunks(std::string_view received, bool eof);

  bool head_request_;
  bool head_done_ = false;
  Framing framing_ = Framing::kNone;
  std::size_t body_start_ = 0;  // offset of the body (after the final head) in the buffer
  std::size_t scan_from_ = 0;   // where the search for the end of a head resumes
  std::size_t next_chunk_ = 0;  // offset of the next chunk-size line
  std::uint64_t content_length_ = 0;
  HttpResponse response_;
  std::string error_;
};

// Sends `request` to `url` and reads the whole response, all within `timeout`. Name resolution
// (getaddrinfo) is not bounded by it; numeric addresses need none.
Result<HttpResponse> Send(const Url& url, const HttpRequest& request,
                          std::chrono::milliseconds timeout);

}  // namespace ferry::app
