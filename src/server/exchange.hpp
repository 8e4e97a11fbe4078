// What a handler sees of one request and how it answers, whatever the protocol: the HTTP/1.1
// server implements Request and Response today, an HTTP/2 stream will implement them too. The
// head carries no HTTP/1 framing (no Transfer-Encoding, Connection or the fields it names,
// Keep-Alive, TE but an HTTP/2 client's `te: trailers`, Upgrade, Expect): the codec frames it.
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

// The head a handler sees carries no framing (http/message.hpp), so routing and filters work
// the same for every protocol.
using RequestHead = http::RequestHead;

struct ResponseHead {
  int status = 200;
  http::Headers headers;    // the handler's fields; the server adds the framing ones
  std::string_view reason;  // the reason phrase; empty: the standard one (a proxy keeps its
                            // upstream's). Only read while WriteHead/Send renders the head.
};

class Request {
 public:
  virtual ~Request() = default;
  RequestHead& head() { return *head_; }
  const RequestHead& head() const { return *head_; }
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
  // The body has been read to its end: the last ReadSome returned its last bytes (the next
  // returns the empty end at once). True from the start for a request without a body.
  virtual bool body_complete() const = 0;
  // The request's trailer fields (chunked trailers; HTTP/2's trailing HEADERS) once the body
  // was read to its end (body_complete()); null when none came. The codec drops fields that
  // may not be trailers (http/trailers.hpp).
  virtual const http::Headers* trailers() const { return nullptr; }
  // The client closed or reset its side (asked without reading): a long wait checks it.
  virtual bool ClientGone() = 0;
  // The client waits for a go-ahead before it sends its body (HTTP/1.1 Expect: 100-continue):
  // reading the body gives it; answering first refuses the body (the connection then closes).
  bool expects_continue() const { return expects_continue_; }
  // The protocol an HTTP/1.1 client asked to switch to (its Upgrade field, when its Connection
  // names `upgrade` and the request has no body), or empty. The head itself carries neither
  // field (they are hop-by-hop); Response::SwitchProtocols takes the connection over.
  std::string_view upgrade() const { return upgrade_; }

 protected:
  RequestHead* head_ = nullptr;  // set by the implementation for each request (the server: the
                                 // codec's head, in place)
  bool expects_continue_ = false;
  std::string upgrade_;
  const runtime::Peer* peer_ = nullptr;
};

// A connection switched to another protocol (101): the handler's until it returns, and closed
// by the server then. `early`: bytes the client sent past the request head, valid until the
// stream is read.
struct Upgraded {
  runtime::Stream* stream = nullptr;  // null: the switch failed (the client is gone)
  std::string_view early;
};

class Response {
 public:
  virtual ~Response() = default;
  // The final head. body_size: the length when known, nullopt to stream the body (chunked; an
  // HTTP/1.0 client gets it until close). Nothing is written yet: the head goes out with the
  // first body bytes, or when the response ends. false: a head was given already; return.
  virtual bool WriteHead(const ResponseHead& head, std::optional<std::uint64_t> body_size) = 0;
  // An interim (1xx) response ahead of the final one (103 Early Hints, an upstream's 100
  // Continue). Not sent to an HTTP/1.0 client, nor a 100 after the server's own 100 Continue.
  // false: the client is gone; return.
  virtual Task<bool> WriteInterim(const ResponseHead& head) = 0;
  // Body bytes (gathered into one write, with the head if it still waits). false: the client
  // is gone or too slow; return.
  virtual Task<bool> WriteBody(std::span<const std::string_view> pieces) = 0;
  // Ends the response (the last chunk of a streamed body). A handler that returns without it
  // has its response ended by the server, the same way.
  virtual Task<bool> Finish() = 0;
  // Finish with trailer fields: HTTP/2 sends them as a HEADERS frame that ends the stream;
  // HTTP/1.1 after the last chunk of a chunked body (a response with a length, or to an
  // HTTP/1.0 client, drops them). Fields that may not be trailers are dropped
  // (http/trailers.hpp).
  virtual Task<bool> FinishWithTrailers(const http::Headers& trailers) = 0;
  // Head and whole body in one write.
  virtual Task<bool> Send(const ResponseHead& head, std::string_view body) = 0;
  virtual bool head_written() const = 0;
  // Cuts the response short: the connection closes without ending the body, so the client
  // sees a truncated response rather than a complete-looking one (an upstream that failed
  // mid-body). The handler should return.
  virtual void Abort() = 0;
  // Answers 101 Switching Protocols with `head`'s fields (the server adds Connection and
  // Upgrade, to the protocol the request asked for) and hands the connection over: no timeout
  // of the server bounds it from then on. Only for a request whose upgrade() is not empty and
  // before any head; otherwise (and on a failed write) a null stream.
  virtual Task<Upgraded> SwitchProtocols(const ResponseHead& head) = 0;
  // The response is a long-lived stream (server-sent events) whose handler bounds it: the
  // listener's request_timeout stops applying from now on; each write stays bounded (the
  // connection's I/O or write timeout).
  virtual void LongLived() {}
};

// Serves requests: called once per request, in order on a connection. It answers through
// `response`; a handler that returns without answering gets a 500 (or, after a failed body
// read, the error that read gave). It must not keep the references past its return.
class Handler {
 public:
  virtual ~Handler() = default;
  virtual Task<void> Serve(Request& request, Response& response) = 0;
  // The server's own answers (a malformed head, a limit, a failed body read the handler left
  // unanswered) are made here: `head` comes empty, the server adds framing. The default is
  // ErrorJson with content-type application/json; the proxy adds its request id.
  virtual void MakeError(int status, std::string_view code, std::string_view message,
                         ResponseHead& head, std::string& body);
  // A connection was accepted / has ended (for connection counters).
  virtual void ConnectionOpened() {}
  virtual void ConnectionClosed() {}
  // A TLS handshake failed or timed out (the connection was closed; no request was read).
  virtual void HandshakeFailed() {}
  // HTTP/2 events, for counters: a connection spoke HTTP/2 (it was counted opened already), a
  // stream's request head arrived, or a connection was ended by a flood bound (rapid reset,
  // CONTINUATION, SETTINGS or ack floods).
  enum class Http2Event { kConnection, kStream, kFlood };
  virtual void Http2(Http2Event) {}
};

// The JSON error body every Ferry API answers with, newline-terminated:
//   {"error":{"code":"not_found","status":404,"message":"..."}}
std::string ErrorJson(int status, std::string_view code, std::string_view message);

}  // namespace ferry::server
