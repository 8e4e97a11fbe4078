// Writes message heads and chunk frames in HTTP/1.1 wire form. Pure functions that append to a
// caller-owned string, so one buffer serves a whole head. Thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "http/message.hpp"

namespace ferry::http {

// True for the headers that apply to one connection only and never travel through a proxy
// (RFC 9110 7.6.1): Connection, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding,
// Upgrade, Proxy-Authenticate, Proxy-Authorization.
bool IsHopByHop(std::string_view name);
// Removes the hop-by-hop headers and every header a Connection line names (all its lines are
// one list), except the fields that frame or route a message: Content-Length and Host stay
// whatever Connection says (a request naming them is refused before this: NamesFramingField).
void RemoveHopByHop(Headers& headers);
// The first field among Content-Length, Transfer-Encoding and Host that this Connection value
// names, or empty. Dropping one of them as hop-by-hop would change how the next hop frames or
// routes the message (`Connection: content-length` smuggles its body as a second request).
std::string_view NamesFramingField(std::string_view connection);

// "GET /x HTTP/1.1\r\n" + fields + "\r\n". The caller has set the framing headers it wants.
void AppendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       const Headers& headers);
// "HTTP/1.1 200 OK\r\n" + fields + "\r\n".
void AppendResponseHead(std::string& out, int status, std::string_view reason,
                        const Headers& headers);
// "1a2b\r\n" (chunk size line); the caller writes the data and then "\r\n".
void AppendChunkSize(std::string& out, std::uint64_t size);
inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace ferry::http
