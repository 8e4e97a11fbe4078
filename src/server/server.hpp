// The HTTP/1.1 server: accept loops, one coroutine per connection, head and body reading with
// the codec (HeadScanner, then the parser's fast path or llhttp), limits, timeouts, keep-alive,
// pipelining (requests on a connection are served in order), Expect: 100-continue and
// graceful drain. A Handler (exchange.hpp) gets each request. Errors the server answers itself,
// in the JSON shape of exchange.hpp's ErrorJson, always closing the connection after:
//   400 bad_request        malformed head or body framing, missing or repeated Host
//   408 request_timeout    a head (or body) begun but not received in time
//   413 body_too_large     a body over max_body_bytes (declared: before it is read)
//   431 headers_too_large  a head over max_header_bytes or max_headers fields
// Every accept loop and connection is a task of the server's TaskGroup: Drain and Close end
// them, Wait waits for them. A connection idle past park_after parks (no task, no coroutine:
// the server keeps its stream and closes it at Drain, Close or its idle timeout).
// Thread safety: one server per event loop; everything on that loop's thread. The server may be
// destroyed while connections run (they hold its shared state); run the loop until Wait()
// completes first to end them cleanly.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "core/units.hpp"
#include "runtime/acceptor.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"
#include "server/exchange.hpp"

namespace ferry::tls {
class ServerContext;
}

namespace ferry::server {

// The bounds of an HTTP/2 connection. The defaults follow nghttp2's own where it has them.
struct Http2Options {
  std::uint32_t max_concurrent_streams = 100;  // SETTINGS_MAX_CONCURRENT_STREAMS
  // Rapid reset (CVE-2023-44487): streams the client may reset, a token bucket of `burst`
  // refilled at `rate` per second; past it the connection ends with GOAWAY.
  std::uint64_t stream_reset_burst = 1000;
  std::uint64_t stream_reset_rate = 33;
  std::size_t max_continuations = 8;    // CONTINUATION frames per header block (flood)
  std::size_t max_outbound_ack = 1000;  // queued SETTINGS/PING acks the client does not read
  std::size_t max_settings = 32;        // entries in one SETTINGS frame
  // Flow control: what a stream and the connection may send ahead of the handler's reads.
  std::uint32_t stream_window = 256 * 1024;
  std::uint32_t connection_window = 1024 * 1024;
  // A stream whose response bytes the client does not take (zero window) for this long is
  // reset; a connection whose write does not end in this long is closed.
  Duration write_timeout = std::chrono::seconds(30);
};

struct ServerOptions {
  std::size_t max_header_bytes = 64 * 1024;  // request line and fields; more: 431
  std::uint32_t max_headers = 100;           // header fields; more: 431
  std::uint64_t max_body_bytes = 0;          // 0: no limit; more: 413
  // From a new connection to its first head, and from a head's first byte to its end; a head
  // begun and not ended in time gets 408, a silent connection is closed.
  Duration header_read_timeout = std::chrono::seconds(30);
  Duration idle_timeout = std::chrono::seconds(60);  // keep-alive between requests
  // From the head to the end of the response, handler included (0: none). A body not received
  // within it gets 408.
  Duration request_timeout = Duration::zero();
  // Without a request_timeout: each body read and each response write must end within this
  // (0: none); the handler's own waits (a long-poll) have no limit from the server.
  Duration io_timeout = std::chrono::seconds(60);
  // A keep-alive connection idle this long (to twice as long: a sweep checks at this interval)
  // parks: its coroutine, parser and timers are freed and only the stream and a small record
  // wait for the next request, which resumes it on a new coroutine. Its idle timeout then
  // counts from when it parked. 0: never park.
  Duration park_after = std::chrono::seconds(1);
  // TLS on this server's connections: each accepted connection's handshake must end within
  // header_read_timeout, else it is closed (counted by Handler::HandshakeFailed). A new
  // context (a reload) applies to new connections. None: plain TCP.
  std::shared_ptr<const tls::ServerContext> tls;
  // HTTP/2 on this server's connections (http2_connection.hpp): h2c when a plain connection's
  // first bytes are the client preface (prior knowledge), h2 when TLS's ALPN chose it (the
  // context offers h2 only when built for it). false: HTTP/1.1 only (the preface is then a
  // malformed head: 400).
  bool http2 = false;
  Http2Options http2_options;
};

class Server {
 public:
  Server(asio::io_context& io, ServerOptions options, Handler& handler);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Accepts connections on `acceptor` until Drain or Close.
  void Listen(std::unique_ptr<runtime::Acceptor> acceptor);
  // Serves one connection accepted elsewhere (tests give one end of a MemoryStream pair).
  void Serve(std::unique_ptr<runtime::Stream> stream);
  // Applies from each connection's next request.
  void SetOptions(const ServerOptions& options);
  // Graceful: stop accepting, close idle connections now and the others after their current
  // exchange (its response says connection: close).
  void Drain();
  // Ends everything now: connections are closed and their tasks (handlers included) cancelled.
  void Close();
  // Completes when every accept loop and connection has ended.
  Task<void> Wait();
  // Open connections, parked ones included.
  std::size_t connection_count() const;
  std::size_t parked_count() const;
  bool draining() const;

  struct State;  // shared with the connections (server.cpp)

 private:
  std::shared_ptr<State> state_;
};

}  // namespace ferry::server
