// Rate limiting state shared by all workers of a node: a token bucket per route, or one per key
// (client address, a header's value). Each bucket is kept as GCRA (the generic cell rate
// algorithm): one "theoretical arrival time" per bucket, which is exactly a token bucket of
// `burst` tokens refilled at `rps`, in one 64-bit word — a lock-free compare-and-swap for a
// route's bucket, a map under a shard's mutex for keyed ones.
// Thread safety: every member may be called from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace ferry::proxy::filters {

class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Duration = std::chrono::nanoseconds;

  // rps > 0; burst >= 1.
  TokenBucket(double rps, std::uint32_t burst);

  // Takes a token if one is there (returns zero); otherwise takes none and returns how long
  // until one will be.
  Duration Take(TimePoint now);

  // The same, for a per-key bucket (each key a bucket of this rate and burst). At most
  // kMaxKeys keys are tracked; past that, keys not seen before share one overflow bucket (so
  // a flood of new keys cannot reset anyone's limit).
  Duration Take(std::string_view key, TimePoint now);

  static constexpr std::size_t kMaxKeys = 65536;

 private:
  // GCRA on `tat` (nanoseconds since the steady epoch): a request at `now` fits when the
  // theoretical arrival time is at most `tolerance_` ahead of now; it moves it by `interval_`.
  Duration Decide(std::int64_t& tat, std::int64_t now) const;

  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const {
      return std::hash<std::string_view>{}(key);
    }
  };
  struct Shard {
    std::mutex mutex;
    std::unordered_map<std::string, std::int64_t, KeyHash, std::equal_to<>> tats;
    std::int64_t last_sweep = 0;  // when full buckets were last forgotten (ns)
  };
  static constexpr std::size_t kShards = 16;

  std::int64_t interval_;   // ns per token
  std::int64_t tolerance_;  // (burst - 1) * interval
  std::atomic<std::int64_t> tat_{0};
  std::atomic<std::int64_t> overflow_tat_{0};
  std::array<Shard, kShards> shards_;
};

}  // namespace ferry::proxy::filters
