// Internal to src/upstream: an HTTP/2 client session (nghttp2) on one pooled connection, shared
// by many exchanges (one stream each). Two tasks per connection, spawned on the cluster's
// TaskGroup, do all its I/O: the reader feeds what arrives to nghttp2 (whose callbacks fill the
// streams' states and wake the exchanges waiting on them), the writer sends what nghttp2 has to
// send (frames, request bodies, window updates, PINGs) whenever something is queued, and pings
// a connection that has been quiet for the keep-alive interval.
// Flow control is the reader's pace: automatic window updates are off, and an exchange
// consumes (nghttp2_session_consume) the bytes of the response body its reader has taken.
// A connection error (reset, EOF, a protocol error, a PING unanswered for an interval) fails
// the streams in flight on it and no other; a GOAWAY makes it take no new streams (streams
// above its last-stream-id end refused, which the cluster retries on another connection).
// Ownership: shared by the pool's PooledConnection (as its Multiplexer), the exchanges and the
// two tasks; the tasks also hold the pooled connection (KeepAlive), so its stream outlives
// them, and they end once the stream is closed (by the pool, or by a connection error).
// Thread safety: the event loop of its pool only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "core/units.hpp"
#include "http/headers.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"
#include "upstream/stream_pool.hpp"

struct nghttp2_session;

namespace ferry::runtime {
class TaskGroup;
}

namespace ferry::upstream {

// Wakes one waiting coroutine: Wait() returns at the next Wake() (or at once if one came since
// the last Wait), or when cancel() is called (by a runtime::Deadline or an IoWatch's Abort).
class Waker {
 public:
  explicit Waker(const asio::any_io_executor& executor);
  void Wake();
  // For runtime::Deadline and IoWatch (named as a socket's): ends the pending Wait.
  void cancel(error_code& ignored);
  Task<void> Wait();
  // Waits until Wake() or `until` (steady_clock), whichever comes first.
  Task<void> WaitUntil(std::chrono::steady_clock::time_point until);

 private:
  asio::steady_timer timer_;
  bool woken_ = false;
};

struct Http2Options {
  std::uint32_t max_streams = 100;                        // the service's cap per connection
  Duration keepalive_interval = std::chrono::minutes(5);  // 0: no PINGs
  std::uint32_t stream_window = 1024 * 1024;              // receive window per stream
  std::uint32_t connection_window = 16 * 1024 * 1024;     // receive window of the connection
  bool tls = false;                                       // :scheme https (else http)
};

// One stream's state, filled by the session's callbacks and read by its exchange.
struct Http2StreamState {
  explicit Http2StreamState(const asio::any_io_executor& executor) : waker(executor) {}
  std::int32_t id = -1;
  // --- the request body (the data provider reads `out` from `out_offset`)
  std::string out;
  std::size_t out_offset = 0;
  bool out_eof = false;       // the body's last piece is in `out`
  bool out_deferred = false;  // the provider said DEFERRED: resume it when `out` fills
  // Trailers sent after the body (a HEADERS frame ending the stream), set with out_eof.
  std::vector<std::pair<std::string, std::string>> out_trailers;
  // --- the response
  int status = 0;
  http::Headers headers;   // of the final head (1xx heads are skipped)
  http::Headers trailers;  // a HEADERS after the final head (forbidden fields dropped)
  bool head_done = false;
  std::string in;                // DATA received and not yet taken by the reader
  bool end_stream = false;       // the server's END_STREAM
  bool closed = false;           // nghttp2 closed the stream
  std::uint32_t error_code = 0;  // RST_STREAM's (or the connection's) code when closed
  bool refused = false;          // closed unprocessed: REFUSED_STREAM, or above a GOAWAY's last id
  std::optional<Error> failure;  // the connection failed under it
  bool cancelled = false;        // we reset it: its DATA is consumed as it comes
  Waker waker;                   // the exchange waiting on this stream
};

class Http2Connection final : public Multiplexer,
                              public std::enable_shared_from_this<Http2Connection> {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Starts a session on the lease's connection (a fresh one): queues the preface and SETTINGS
  // and spawns the reader and writer on `tasks`. Errors: kInternal (nghttp2 refused to start).
  static Result<std::shared_ptr<Http2Connection>> Start(asio::io_context& io,
                                                        const StreamPool::Lease& lease,
                                                        const Http2Options& options,
                                                        runtime::TaskGroup& tasks);
  ~Http2Connection() override;
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  // Waits for the server's first SETTINGS (so capacity() knows its MAX_CONCURRENT_STREAMS),
  // until `deadline`. Errors: kConnectFailed (not in time), the connection's failure.
  Task<Result<void>> Handshake(TimePoint deadline);

  // --- Multiplexer
  bool accepting() const override { return !failure_ && !goaway_ && !exhausted_; }
  std::uint32_t capacity() const override;

  // Opens a stream for `state` (its id set): the head (HTTP/2 pseudo-fields from `method`, `target`
  // and `authority`; `fields` without connection-specific ones, names lowercase) and, if
  // `has_body`, a body fed through the state's `out`. Errors: kConnectionClosed (the connection
  // takes no new stream; the state says refused), kUpstreamProtocol.
  Result<void> Open(const std::shared_ptr<Http2StreamState>& state, std::string_view method,
                    std::string_view target, std::string_view authority,
                    const std::vector<std::pair<std::string, std::string>>& fields, bool has_body);
  // The state's `out` was filled (or ended): lets nghttp2 read it.
  void ResumeBody(Http2StreamState& state);
  // The reader took `n` bytes of the stream's body: they leave the flow-control windows.
  void Consume(const Http2StreamState& state, std::size_t n);
  // Ends a stream early with RST_STREAM CANCEL (a deadline, an abort, a dropped reader).
  void Cancel(Http2StreamState& state);

  std::uint64_t streams_opened() const { return streams_opened_; }
  const std::optional<Error>& failure() const { return failure_; }

 private:
  Http2Connection(asio::io_context& io, runtime::Stream& stream, const Http2Options& options);
  static Task<void> ReadLoop(std::shared_ptr<Http2Connection> self, std::shared_ptr<void> keep);
  static Task<void> WriteLoop(std::shared_ptr<Http2Connection> self, std::shared_ptr<void> keep);
  // Fails the connection: every open stream fails with `error`, the stream is closed.
  void FailConnection(Error error);
  void KickWriter() { writer_.Wake(); }
  Http2StreamState* StateOf(std::int32_t stream_id) const;

  friend struct Http2Callbacks;  // nghttp2's callbacks (http2_connection.cpp)

  runtime::Stream& stream_;
  Http2Options options_;
  nghttp2_session* session_ = nullptr;
  Waker writer_;
  Waker settings_;                                                     // Handshake waits on it
  std::map<std::int32_t, std::shared_ptr<Http2StreamState>> streams_;  // open streams
  std::optional<Error> failure_;
  bool goaway_ = false;
  bool exhausted_ = false;  // stream ids ran out
  bool got_settings_ = false;
  bool ping_outstanding_ = false;
  TimePoint last_frame_{};  // the last frame received
  std::uint64_t streams_opened_ = 0;
};

}  // namespace ferry::upstream
