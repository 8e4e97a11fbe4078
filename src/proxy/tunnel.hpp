// The byte relay of an upgraded connection (a WebSocket through the proxy): once both sides
// switched protocols, bytes go each way as they come, unparsed, until both directions ended
// (EOF is passed on as a half-close), an error, or a limit. Each direction has its own 16 KiB
// buffer, so a 1 MiB message passes in pieces, never whole.
// Thread safety: both streams on the calling coroutine's event loop.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "core/units.hpp"
#include "runtime/asio.hpp"

namespace ferry::runtime {
class Stream;  // runtime/stream.hpp
}

namespace ferry::proxy {

struct TunnelLimits {
  Duration idle{};          // no byte either way for this long ends the tunnel; 0: never
  Duration max_duration{};  // the tunnel ends this long after it started; 0: never
};

struct TunnelResult {
  std::uint64_t to_upstream = 0;  // bytes relayed client -> upstream (early bytes included)
  std::uint64_t to_client = 0;    // bytes relayed upstream -> client
  bool idle_timed_out = false;
  bool max_duration_reached = false;
  bool cancelled = false;  // the relay itself was cancelled (the worker stops)
};

// Relays until the tunnel ends; `*_early` are bytes read past the heads, sent first. The
// streams are left open (their owners close them).
Task<TunnelResult> RelayTunnel(runtime::Stream& client, std::string_view client_early,
                               runtime::Stream& upstream, std::string_view upstream_early,
                               TunnelLimits limits);

}  // namespace ferry::proxy
