// The settings of a pool of connections to one upstream endpoint (StreamPool),
// taken from a service's config. A value type (the TLS holder is shared).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "core/units.hpp"

namespace ferry::tls {
class ClientTls;
}  // namespace ferry::tls

namespace ferry::upstream {

struct PoolSettings {
  std::uint32_t max_connections = 1024;  // open (idle + in use) per endpoint on this event loop
  Duration connect_timeout = std::chrono::seconds(2);
  Duration idle_timeout = std::chrono::seconds(60);
  // The service's TLS (node-wide, swapped on changes); null: plain TCP. A connection is made
  // with its current context, the handshake within connect_timeout.
  std::shared_ptr<tls::ClientTls> tls;
  // Connections may carry many exchanges (HTTP/2): a lease waits for a connection being made
  // (it will likely have room) rather than making one more. Set by the Cluster from its
  // protocol.
  bool multiplexed = false;
};

}  // namespace ferry::upstream
