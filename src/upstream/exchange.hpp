// What the upstream client sends and gets back: Request (method, target, headers, an optional
// body source) and Response (status, headers, a body reader). A body goes both ways as a stream
// of pieces, so the proxy can forward bodies of any size without holding them whole; a whole
// string is the simple case (StringBody, BodyReader::ReadAll).
// Ownership: a Request's body source belongs to the caller and must outlive Send. A Response's
// body reader holds the connection's lease: the connection goes back to its pool once the body
// was read to its end (and the response and the exchange allow keep-alive), or is closed when
// the reader is destroyed before that.
// Thread safety: owned by one coroutine on one event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "http/headers.hpp"
#include "http/message.hpp"
#include "runtime/asio.hpp"

namespace ferry::runtime {
class IoWatch;  // runtime/io_watch.hpp
class Stream;   // runtime/stream.hpp
}  // namespace ferry::runtime

namespace ferry::upstream {

// A request body, read piece by piece as it is sent.
class BodySource {
 public:
  virtual ~BodySource() = default;
  // The body's length if known up front (sent with content-length); nullopt: sent chunked.
  virtual std::optional<std::uint64_t> length() const = 0;
  // The next piece, valid until the next call; an empty piece is the end. An error ends the
  // exchange with it (the connection is closed).
  virtual Task<Result<std::string_view>> Read() = 0;
  // Starts again from the first byte, for the one retry after the keep-alive race; false if
  // it cannot (bytes already read from a client are gone): the request is then not retried.
  virtual bool Rewind() = 0;
  // The body's trailer fields, once Read gave the end; null: none (sent with the last chunk
  // over HTTP/1.1 when the body is chunked, as a trailing HEADERS over HTTP/2).
  virtual const http::Headers* trailers() const { return nullptr; }
};

// A whole body in memory (not copied: the bytes must outlive Send). Always replayable.
class StringBody final : public BodySource {
 public:
  explicit StringBody(std::string_view data) : data_(data) {}
  std::optional<std::uint64_t> length() const override { return data_.size(); }
  Task<Result<std::string_view>> Read() override;
  bool Rewind() override {
    read_ = false;
    return true;
  }

 private:
  std::string_view data_;
  bool read_ = false;
};

// Sees the interim (1xx) responses that come before the final one, e.g. so a proxy forwards
// 103 Early Hints to its client. Without one, they are skipped.
class InterimSink {
 public:
  virtual ~InterimSink() = default;
  // status 100..199 (not 101); false ends the exchange with kCancelled (no one to answer).
  virtual Task<bool> OnInterim(int status, std::string_view reason,
                               const http::Headers& headers) = 0;
};

struct Endpoint;  // endpoint.hpp

struct Request {
  std::string method = "GET";
  std::string target = "/";  // origin form: "/path?query"
  // End-to-end fields. Send frames the body itself: it replaces any content-length and
  // transfer-encoding here (with the body source's length, or chunked), and adds host (the
  // endpoint's "ip:port") when there is none. Connection-specific fields are the caller's to
  // remove (http::RemoveHopByHop).
  http::Headers headers;
  // A head the caller lends instead of method, target and headers above: used, and framed, in
  // place, with no copy (a proxy forwards its client's head so). Must outlive Send.
  http::RequestHead* head = nullptr;
  BodySource* body = nullptr;      // null: no body
  InterimSink* interim = nullptr;  // null: 1xx responses are skipped
  // For a kHash load balancer: HashKey() of what the service hashes on.
  std::uint64_t hash_key = 0;
  // An endpoint to stay away from (a retry after a try on it failed): Send picks another
  // usable one when there is one, else this one (compared by pointer: a stale one is harmless).
  const Endpoint* avoid = nullptr;
  // The keep-alive race retry may send the request again after it was written (the method is
  // idempotent, or the upstream honours its Idempotency-Key); false: only a request that was
  // never written goes again.
  bool may_resend = true;
  // Until the response head: a try timeout (resilience), earlier than Send's deadline, which
  // still bounds the body. Past it the try ends with kDeadlineExceeded and its connection is
  // closed. max: none.
  std::chrono::steady_clock::time_point head_deadline =
      std::chrono::steady_clock::time_point::max();
  // Watches the try from outside Send until its response head (null: none; the resilience
  // client's hedging): the connect's and the exchange's socket deadlines give its notice, and
  // its Abort ends the try with kCancelled (the connection closed, the endpoint not blamed).
  // Must outlive Send.
  runtime::IoWatch* watch = nullptr;

  // Set by Send, for the caller's logs and metrics: the endpoint picked (null if none was),
  // and how often the request was sent again after the keep-alive race (0 or 1).
  std::shared_ptr<const Endpoint> endpoint;
  std::uint32_t keepalive_retries = 0;

  // What is sent: the lent head's, else the fields above.
  std::string_view sent_method() const { return head != nullptr ? head->method : method; }
  std::string_view sent_target() const { return head != nullptr ? head->target : target; }
  http::Headers& sent_headers() { return head != nullptr ? head->headers : headers; }
  const http::Headers& sent_headers() const { return head != nullptr ? head->headers : headers; }
};

// A 101 (Switching Protocols) response's connection, taken over (BodyReader::TakeUpgraded):
// the stream and the bytes the upstream sent past the head (valid until the stream is read).
// It is the taker's while the reader lives, never goes back to its pool, and closes with the
// reader.
struct Upgraded {
  runtime::Stream* stream = nullptr;  // null: the response was not a 101
  std::string_view early;
};

// The body of a response, read as it arrives. Implemented per protocol (HTTP/1.1 today).
class BodyReader {
 public:
  class Source {
   public:
    virtual ~Source() = default;
    virtual Task<Result<std::string_view>> Read() = 0;
    // What Read would give without waiting for I/O (a piece already buffered, the end, an
    // error), or nullopt when it would have to wait. The default always waits.
    virtual std::optional<Result<std::string_view>> TryRead() { return std::nullopt; }
    virtual bool done() const = 0;
    virtual std::optional<std::uint64_t> length() const = 0;
    // The connection of a 101 response, once (see Upgraded); the default has none.
    virtual Upgraded TakeUpgraded() { return {}; }
    // The response's trailer fields once the body was read to its end; null: none.
    virtual const http::Headers* trailers() const { return nullptr; }
  };

  BodyReader() = default;
  explicit BodyReader(std::unique_ptr<Source> source) : source_(std::move(source)) {}

  // The next piece of the body, a view valid until the next call; empty at the end (and then
  // the connection is back in its pool, if it may be reused). Errors: kDeadlineExceeded (the
  // Send deadline passed), kConnectionClosed (cut short), kUpstreamProtocol, kCancelled.
  // (Not a coroutine itself: it hands out the source's, so a piece costs one frame.)
  Task<Result<std::string_view>> ReadSome() {
    if (source_ == nullptr) return NoBody();
    return source_->Read();
  }
  // ReadSome's answer when it needs no I/O (a plain call, no coroutine frame); nullopt when
  // it would wait: then co_await ReadSome().
  std::optional<Result<std::string_view>> TryReadSome() {
    if (source_ == nullptr) return Result<std::string_view>(std::string_view());
    return source_->TryRead();
  }
  // A 101 response's connection, for the caller to relay the new protocol on: no deadline of
  // Send bounds it any more. Once; an empty Upgraded for any other response.
  Upgraded TakeUpgraded() { return source_ ? source_->TakeUpgraded() : Upgraded{}; }
  // The whole body; kResourceExhausted if it is longer than max_bytes (the connection closed).
  Task<Result<std::string>> ReadAll(std::uint64_t max_bytes);
  // Reads the body to its end and drops it, so the connection can be reused; past max_bytes
  // it stops and the connection is closed instead (kResourceExhausted).
  Task<Result<void>> Drain(std::uint64_t max_bytes);
  // The whole body was read (an empty body is read at once).
  bool done() const { return !abandoned_ && (source_ == nullptr || source_->done()); }
  // The response's trailer fields, once done() (chunked trailers, HTTP/2's trailing HEADERS;
  // forbidden fields already dropped); null when none came.
  const http::Headers* trailers() const { return source_ ? source_->trailers() : nullptr; }
  // The body's length when the response gave one (content-length; 0 for no body); nullopt for
  // chunked or until-close bodies.
  std::optional<std::uint64_t> length() const {
    return source_ ? source_->length() : std::optional<std::uint64_t>(0);
  }

 private:
  static Task<Result<std::string_view>> NoBody();
  void Abandon() {
    source_.reset();  // closes the connection
    abandoned_ = true;
  }
  std::unique_ptr<Source> source_;
  bool abandoned_ = false;
};

struct Response {
  // The endpoint that answered (its id for access logs, its health for outlier detection).
  std::shared_ptr<const Endpoint> endpoint;
  int status = 0;
  std::string reason;
  // As received, hop-by-hop fields included (a proxy removes them with http::RemoveHopByHop).
  http::Headers headers;
  BodyReader body;
};

}  // namespace ferry::upstream
