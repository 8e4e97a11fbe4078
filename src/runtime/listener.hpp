// Listening sockets. Each worker opens its own socket on a listener's address with
// SO_REUSEPORT, and the kernel spreads new connections across them.
// Thread safety: call on the thread that owns the io_context, or before it runs.
#pragma once

#include "config/config.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"

namespace ferry::runtime {

// Opens, binds and listens. reuse_port lets several workers share the address. Port 0 binds an
// ephemeral port: read it back with acceptor.local_endpoint() and open the others on it.
Result<tcp::acceptor> OpenListener(asio::io_context& io, const config::Address& address,
                                   bool reuse_port, int backlog = 4096);

// A literal address (no DNS: listeners bind literal addresses only).
Result<tcp::endpoint> ToEndpoint(const config::Address& address);

}  // namespace ferry::runtime
