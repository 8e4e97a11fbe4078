// A small blocking HTTP/1.1 client over POSIX sockets, for the CLI's bus commands, the JWKS
// fetch and the example services: one request per connection (`Connection: close`), responses
// read with the project's own HTTP codec (src/http, no second parser), and one deadline for the
// whole exchange (connect, TLS handshake, write, every read). https:// URLs run TLS (OpenSSL)
// over the socket with a context and a peer check the caller gives (TlsSettings; app/
// verified_send.hpp makes them from a CA bundle). No Asio, no shared state: thread-safe as long
// as callers do not share arguments. Failures are returned, never thrown: kInvalidArgument (bad
// URL, an https:// URL without TlsSettings), kUnavailable (cannot resolve or connect),
// kDeadlineExceeded, kTlsFailed (the handshake failed or the server is not the one expected),
// kConnectionClosed (the peer left mid-response), kUpstreamProtocol (not a valid HTTP/1.x
// response).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "http/head_scanner.hpp"
#include "http/parser.hpp"

struct ssl_ctx_st;
struct ssl_st;

namespace ferry::app {

// A URL as the client uses it: "http://127.0.0.1:8081/prefix", "https://idp.example/jwks".
struct Url {
  std::string host;         // a name or an IP; an IPv6 address without its brackets
  std::uint16_t port = 80;  // from the URL, else 80 (443 for https)
  std::string path;         // "" or a prefix starting with '/' and not ending in one
  bool https = false;       // TLS over the connection

  std::string HostHeader() const;  // "host:port", IPv6 in brackets
  std::string ToString() const;    // "http[s]://host:port/path"
};

// "http[s]://host[:port][/path]"; the scheme may be left out (http). Another scheme, user
// info, a query or a fragment are kInvalidArgument with a message that says why.
Result<Url> ParseUrl(std::string_view text);

// What Send needs for an https:// URL. The context holds the roots, versions and ALPN and must
// verify the chain (SSL_VERIFY_PEER); check_peer then says whether the verified server is the
// one wanted (its name, pins): its error, kTlsFailed, fails the exchange.
struct TlsSettings {
  ssl_ctx_st* context = nullptr;  // not owned; outlives the call
  std::string server_name;        // SNI; "" sends none (an IP address)
  std::function<Result<void>(ssl_st*)> check_peer;
};

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

// Reads one response as its bytes arrive, with the codec the proxy uses (http::HeadScanner's
// raw-byte checks, then http::Parser in response mode), so the client parses what the fuzz
// target covers. Pure logic, no I/O: Read is called with each piece received, in order; body
// bytes are copied out before it returns, so the caller may reuse its buffer. Interim 1xx heads
// are skipped; bytes after the complete response are ignored. Not thread-safe; one reader per
// response.
class ResponseReader {
 public:
  enum class State {
    kIncomplete,  // more bytes are needed
    kComplete,    // response() is whole
    kError,       // error() says why
  };
  // One head (status line and fields) of the response; a longer or fuller one is an error.
  static constexpr http::HeadLimits kHeadLimits{64 * 1024, 256};

  // `head_request`: the request was HEAD, so the response has no body whatever it says.
  explicit ResponseReader(bool head_request = false);

  // Takes the next bytes received. Once kComplete or kError, stays so.
  State Read(std::string_view received);
  // The peer closed: completes a body framed by the end of the connection; anything else not
  // yet whole is an error. Never kIncomplete.
  State Finish();

  HttpResponse& response() { return response_; }
  // kUpstreamProtocol (not a valid HTTP/1.x response, or a head over kHeadLimits),
  // kConnectionClosed (cut short), or kInternal (the codec stopped making progress: a bug).
  // The message names no host.
  const Error& error() const { return error_; }

 private:
  State Fail(ErrorCode code, std::string why);
  State ReadHeads();
  State ReadBody(std::string_view data);

  bool head_request_;
  State state_ = State::kIncomplete;
  http::HeadScanner scanner_{kHeadLimits};
  http::Parser parser_{http::Parser::Kind::kResponse};
  std::string head_;  // bytes received while no final head has been parsed yet
  HttpResponse response_;
  Error error_{ErrorCode::kOk, ""};
};

// Sends `request` to `url` and reads the whole response, all within `timeout`. Name resolution
// (getaddrinfo) is not bounded by it; numeric addresses need none. `tls` is required for an
// https:// URL and ignored for http://.
Result<HttpResponse> Send(const Url& url, const HttpRequest& request,
                          std::chrono::milliseconds timeout, const TlsSettings* tls = nullptr);

}  // namespace ferry::app
