// HTTP/2 connections of the server (nghttp2, server side): internal to src/server. An HTTP/2
// connection is reached two ways: TLS whose ALPN chose "h2", or a plain connection whose first
// bytes are the client preface (h2c by prior knowledge; server.cpp checks what its first read
// gave, so HTTP/1.1 pays one comparison). Each stream is a Request/Response pair (exchange.hpp)
// served by the Handler as its own task, so routing, filters and the proxy serve it unchanged.
// nghttp2 and Asio stay in the .cpp (and server_state.hpp): this header names neither.
// Thread safety: the server's event loop only.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "runtime/asio.hpp"
#include "runtime/stream.hpp"
#include "server/server.hpp"

namespace ferry::server {

// The HTTP/2 client connection preface (RFC 9113 3.4).
inline constexpr std::string_view kHttp2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum class PrefaceMatch {
  kNo,       // not HTTP/2: an HTTP/1.1 head
  kPartial,  // a prefix of the preface so far: read more to tell
  kYes,      // the whole preface
};
// What a plain connection's first bytes say.
PrefaceMatch MatchPreface(std::string_view first_bytes);

class Http2Connection;  // http2_connection.cpp

// Serves one HTTP/2 connection until it ends. `early`: bytes already read from `stream` (the
// preface and what followed it, for h2c; empty after ALPN). The caller has counted the
// connection open (Handler::ConnectionOpened); this counts it closed.
Task<void> RunHttp2(std::shared_ptr<Server::State> state, std::unique_ptr<runtime::Stream> stream,
                    std::string early);

// Drain: the two-phase GOAWAY (a notice with last-stream-id 2^31-1, a PING, then the final
// GOAWAY with the last stream id taken); the streams in flight finish.
void DrainHttp2(Http2Connection& connection);
// Ends it now: the socket closes and the streams' handler tasks are cancelled.
void CloseHttp2(Http2Connection& connection);

}  // namespace ferry::server
