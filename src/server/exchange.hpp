// What a handler sees of one request and how it answers, whatever the protocol: the HTTP/1.1
// server implements Request and Response today, an HTTP/2 stream will implement them too. The
// head carries no HTTP/1 framing (no Transfer-Encoding, Connection or the fields it names,
// Keep-Alive, TE, Upgrade, Expect): that stays in the codec, which frames the body itself.
// Ownership: both belong to the connection; they are valid for the duration of Handler::Serve.
// Body views are valid until the next read. Thread safety: one event loop, one handler call.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "http/headers.hpp"
#include "http/message.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"

namespace ferry::server {

struct RequestHead {
  std::string method;  // "GET"
  std::string target;  // "/v1/queues/q/messages?max=10": origin form, or as the client sent it
  http::Headers headers;
  std::string_view path() const { return http::TargetPath(target); }
  std::string_view query() const { return http::TargetQuery(target); }
};

struct ResponseHead {
  int status = 200;
  http::Headers headers;  // the handler's fields; the server adds the framing ones
};

class Request {
 public:
  virtual ~Request() = default;
  RequestHead& head() { return head_; }
  const RequestHead& head() const { return head_; }
  const runtime::Peer& peer() const { return *peer_; }
  // The body's length when declared (0: no body); nullopt when it is streamed (chunked).
  virtual std::optional<std::uint64_t> body_size() const = 0;
  // The next body bytes, as views valid until the next read: an empty span at the end of the
  // body. Errors (the server answers them if the handler returns without a response):
  // kResourceExhausted (413), kInvalidArgument (400), kDeadlineExceeded (408),
  // kConnectionClosed (the client went: no answer).
  virtual Task<Result<std::span<const std::string_view>>> ReadSome() = 0;
  // The whole body, up to max_bytes (and the server's limit): a view of the connection's buffer
  // when it came whole, else of a copy. Errors as ReadSome; a longer body is kResourceExhausted.
  virtual Task<Result<std::string_view>> ReadWhole(std::uint64_t max_bytes) = 0;
  // The client closed or reset its side (asked without reading): a long wait checks it.
  virtual bool ClientGone() = 0;
  // The client waits for a go-ahead before it sends its body (HTTP/1.1 Expect: 100-continue):
  // reading the body gives it; answering first refuses the body (the connection then closes).
  bool expects_continue() const { return expects_continue_; }

 protected:
  RequestHead head_;
  bool expects_continue_ = false;
  const runtime::Peer* peer_ = nullptr;
};

class Response {
 public:
  virtual ~Response() = default;
  // The final head. body_size: the length when known, nullopt to stream the body (chunked; an
  // HTTP/1.0 client gets it until close). The head may wait to go out with the first body
  // bytes. false: the head was written already; the handler should return.
  virtual Task<bool> WriteHead(const ResponseHead& head, std::optional<std::uint64_t> body_size) = 0;
  // Body bytes (gathered into one write). false: the client is gone or too slow; return.
  virtual Task<bool> WriteBody(std::span<const std::string_view> pieces) = 0;
  // Ends the response (the last chunk of a streamed body).
  virtual Task<bool> Finish() = 0;
  // Head and whole body in one write.
  virtual Task<bool> Send(const ResponseHead& head, std::string_view body) = 0;
  virtual bool head_written() const = 0;
};

// Serves requests: called once per request, in order on a connection. It answers through
// `response`; a handler that returns without answering gets a 500 (or, after a failed body
// read, the error that read gave). It must not keep the references past its return.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual Task<void> Serve(Request& request, Response& response) = 0;
};

// The JSON error body every Ferry API answers with, newline-terminated:
//   {"error":{"code":"not_found","status":404,"message":"..."}}
std::string ErrorJson(int status, std::string_view code, std::string_view message);

}  // namespace ferry::server
