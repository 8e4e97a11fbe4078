// gRPC in the proxy (docs/grpc.md): which requests are gRPC, the table from Ferry's own failures
// to gRPC statuses and the Trailers-Only reply that carries them, and grpc-timeout (parsed
// strictly, written back as the time left). The calls themselves go through the proxy unchanged:
// HTTP/2 both ways, trailers forwarded (server/exchange.hpp). Thread safety: pure functions.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "http/headers.hpp"
#include "proxy/filter.hpp"

namespace ferry::server {
struct ResponseHead;
}  // namespace ferry::server

namespace ferry::proxy::grpc {

// The marker on Ferry's own UNAVAILABLE when a circuit breaker is open (`x-ferry-breaker:
// open`): the next hop should not retry it.
inline constexpr std::string_view kBreakerHeader = "x-ferry-breaker";

// gRPC status codes (grpc/status.h) Ferry answers with.
enum Status : int {
  kOk = 0,
  kUnknown = 2,
  kDeadlineExceeded = 4,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kUnauthenticated = 16,
};

// A request is gRPC when its content-type is application/grpc or application/grpc+<codec>
// (gRPC-Web's application/grpc-web is not), whether or not a route matched it.
bool IsGrpc(const http::Headers& headers);
// The gRPC status for a local reply's HTTP status and JSON code (the table in docs/grpc.md).
Status StatusFor(int http_status, std::string_view code);
// The grpc-status of these fields (a Trailers-Only head, or trailers), or -1 when there is none
// or it is not a number.
int StatusOf(const http::Headers* fields);
// grpc-message's encoding: bytes outside 0x20..0x7e, and '%', as %XX.
std::string PercentEncode(std::string_view message);
// A local reply as gRPC's Trailers-Only response: :status 200, content-type application/grpc,
// grpc-status, grpc-message (percent-encoded `message`), x-request-id, the reply's own fields
// (not its content-type), and x-ferry-breaker: open for circuit_open. No body: the server
// sends it as one HEADERS frame with END_STREAM (WriteHead without a length, then Finish).
void MakeTrailersOnlyHead(const LocalReply& reply, std::string_view message,
                          std::string_view request_id, server::ResponseHead& head);
// grpc-timeout (PROTOCOL-HTTP2.md): 1 to 8 digits and a unit (H, M, S, m, u, n), nothing
// else; nullopt when malformed. Capped at 24 hours.
std::optional<std::chrono::nanoseconds> ParseTimeout(std::string_view value);
// `left` as a grpc-timeout value: microseconds below 100 s, else milliseconds (rounded up, at
// least 1u).
std::string FormatTimeout(std::chrono::nanoseconds left);

// Follows the gRPC messages of one direction's byte stream (each a 5-byte prefix: a flag byte
// and a 4-byte big-endian length, then the message) and finds the first one declared longer than
// `max` (a route's grpc.max_message_bytes). Bytes of a message are skipped, not kept.
class MessageMeter {
 public:
  explicit MessageMeter(std::uint64_t max) : max_(max) {}
  // The next bytes of the stream. nullopt: no message past the limit began; else the offset in
  // `bytes` where the prefix of the one too long began (0 if it began in earlier bytes). Once
  // it has said so, it says so for every later call.
  std::optional<std::size_t> Feed(std::string_view bytes);
  std::uint64_t declared() const { return declared_; }  // the length of the last prefix read
  std::uint64_t max() const { return max_; }

 private:
  std::uint64_t max_;
  std::uint64_t skip_ = 0;  // bytes of the current message still to come
  unsigned char prefix_[5] = {};
  std::size_t have_ = 0;  // bytes of the next prefix read so far
  std::uint64_t declared_ = 0;
  bool over_ = false;
};

}  // namespace ferry::proxy::grpc
