#include "upstream/grpc_health.hpp"

#include <cstdint>
#include <optional>

namespace ferry::upstream::grpc_health {
namespace {

constexpr std::uint64_t kServing = 1;  // HealthCheckResponse.ServingStatus.SERVING

void AppendVarint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

std::optional<std::uint64_t> ReadVarint(std::string_view& in) {
  std::uint64_t value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    value |= std::uint64_t{byte & 0x7fu} << shift;
    if ((byte & 0x80) == 0) return value;
  }
  return std::nullopt;
}

}  // namespace

std::string CheckRequest(std::string_view service) {
  std::string message;
  if (!service.empty()) {     // proto3: an empty string is not sent
    message.push_back(0x0a);  // field 1, length-delimited
    AppendVarint(message, service.size());
    message.append(service);
  }
  std::string out(5, '\0');  // not compressed, then the length, big-endian
  const auto n = static_cast<std::uint32_t>(message.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + message;
}

bool Serving(int http_status, const http::Headers& head, const http::Headers* trailers,
             std::string_view body) {
  if (http_status != 200) return false;
  auto status = trailers != nullptr ? trailers->Get("grpc-status") : std::nullopt;
  if (!status) status = head.Get("grpc-status");
  if (!status || *status != "0") return false;
  if (body.size() < 5 || body[0] != 0) return false;  // one message, not compressed
  const std::uint32_t n = (std::uint32_t{static_cast<std::uint8_t>(body[1])} << 24) |
                          (std::uint32_t{static_cast<std::uint8_t>(body[2])} << 16) |
                          (std::uint32_t{static_cast<std::uint8_t>(body[3])} << 8) |
                          std::uint32_t{static_cast<std::uint8_t>(body[4])};
  if (body.size() != 5 + std::size_t{n}) return false;
  std::string_view message = body.substr(5);
  std::uint64_t serving = 0;  // proto3: an absent status is UNKNOWN (0)
  while (!message.empty()) {
    const auto tag = ReadVarint(message);
    if (!tag) return false;
    switch (*tag & 7) {
      case 0: {  // varint
        const auto value = ReadVarint(message);
        if (!value) return false;
        if (*tag >> 3 == 1) serving = *value;
        break;
      }
      case 2: {  // length-delimited: skipped
        const auto length = ReadVarint(message);
        if (!length || *length > message.size()) return false;
        message.remove_prefix(static_cast<std::size_t>(*length));
        break;
      }
      default:
        return false;
    }
  }
  return serving == kServing;
}

}  // namespace ferry::upstream::grpc_health
