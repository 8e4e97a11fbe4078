#include "config/http2_loader.hpp"

namespace ferry::config::internal {

namespace {

template <typename T>
void Take(MapReader& map, std::string_view key, std::int64_t min, std::int64_t max, T& out,
          Diagnostics& diags) {
  if (auto field = map.Take(key)) {
    if (auto value = ReadInt(*field, min, max, diags)) out = static_cast<T>(*value);
  }
}

}  // namespace

void ReadHttp2Limits(MapReader& map, Limits& limits, Diagnostics& diags) {
  // Above 10,000 open streams a connection is a resource pin, not a client.
  Take(map, "max_concurrent_streams", 1, 10'000, limits.max_concurrent_streams, diags);
  // Rapid reset (CVE-2023-44487): a token bucket of resets per connection.
  Take(map, "stream_reset_burst", 1, 1'000'000, limits.stream_reset_burst, diags);
  Take(map, "stream_reset_rate", 1, 1'000'000, limits.stream_reset_rate, diags);
}

}  // namespace ferry::config::internal
