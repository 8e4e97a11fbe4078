// The client side of the transport seam: a TCP connection to one address, as a Stream (the
// upstream client's connections are made here, so no other area names tcp::socket to connect).
// A TLS client stream plugs in beside it (Connect, then a handshake over the TcpStream).
// Thread safety: each call belongs to the event loop of `io`; the stream it gives too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/result.hpp"
#include "core/units.hpp"
#include "runtime/asio.hpp"
#include "runtime/io_watch.hpp"
#include "runtime/stream.hpp"

namespace ferry::runtime {

// Connects to ip:port ("10.0.0.7", "::1": numeric, no name resolution) within `timeout` (zero
// or less: no limit of its own; the caller's cancellation still ends it). The stream has
// TCP_NODELAY set and knows its peer.
// Errors: kConnectFailed (refused, unreachable, reset, or the timeout passed: the message says
// which; nothing was sent), kInvalidArgument (ip is not an address), kCancelled (the awaiting
// coroutine was cancelled, or `watch` aborted the connect).
// `watch` (optional) watches the connect: its notice may come while it waits, its Abort ends it.
Task<Result<std::unique_ptr<Stream>>> Connect(asio::io_context& io, const std::string& ip,
                                              std::uint16_t port, Duration timeout,
                                              IoWatch* watch = nullptr);

// For a connection that sat idle in a pool: false if the peer closed or reset it, or sent bytes
// nobody asked for (an HTTP/1 peer that did is out of step: the connection is unusable). Reads
// nothing. A TcpStream is checked with one non-blocking peek; other streams by PeerGone().
bool IdleConnectionUsable(Stream& stream);

}  // namespace ferry::runtime
