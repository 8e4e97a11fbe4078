// WebSocket (RFC 6455) as the proxy sees it: only the opening handshake is checked; the frames
// go through the tunnel unparsed (tunnel.hpp).
#pragma once

#include <string>
#include <string_view>

namespace ferry::proxy {

// The Sec-WebSocket-Accept a server must answer `key` (the client's Sec-WebSocket-Key) with:
// base64(SHA-1(key + the RFC's GUID)) (RFC 6455 4.2.2).
std::string WebSocketAccept(std::string_view key);

}  // namespace ferry::proxy
