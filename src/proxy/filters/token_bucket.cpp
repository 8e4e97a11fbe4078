#include "proxy/filters/token_bucket.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace ferry::proxy::filters {
namespace {

std::int64_t Nanos(TokenBucket::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

TokenBucket::TokenBucket(double rps, std::uint32_t burst)
    : interval_(std::max<std::int64_t>(1, std::llround(1e9 / rps))),
      tolerance_(static_cast<std::int64_t>(std::max<std::uint32_t>(burst, 1) - 1) * interval_) {}

TokenBucket::Duration TokenBucket::Decide(std::int64_t& tat, std::int64_t now) const {
  const std::int64_t start = std::max(tat, now);
  if (start - now > tolerance_) return Duration(start - now - tolerance_);
  tat = start + interval_;
  return Duration::zero();
}

TokenBucket::Duration TokenBucket::Take(TimePoint now) {
  const std::int64_t t = Nanos(now);
  std::int64_t seen = tat_.load(std::memory_order_relaxed);
  for (;;) {
    std::int64_t next = seen;
    const Duration wait = Decide(next, t);
    if (wait != Duration::zero()) return wait;
    if (tat_.compare_exchange_weak(seen, next, std::memory_order_relaxed)) return wait;
  }
}

TokenBucket::Duration TokenBucket::Take(std::string_view key, TimePoint now) {
  const std::int64_t t = Nanos(now);
  const std::size_t hash = KeyHash{}(key);
  // The shard from the high bits, so the map (which uses the low ones) still spreads.
  Shard& shard = shards_[(hash >> 48) % kShards];
  std::lock_guard lock(shard.mutex);
  auto it = shard.tats.find(key);
  if (it == shard.tats.end()) {
    if (shard.tats.size() >= kMaxKeys / kShards && t - shard.last_sweep >= interval_) {
      // Forget the keys whose buckets are full again (the same as absent ones); at most once
      // per token interval, so a flood of new keys does not make every request a scan.
      std::erase_if(shard.tats, [&](const auto& entry) { return entry.second <= t; });
      shard.last_sweep = t;
    }
    if (shard.tats.size() >= kMaxKeys / kShards) {
      std::int64_t seen = overflow_tat_.load(std::memory_order_relaxed);
      for (;;) {
        std::int64_t next = seen;
        const Duration wait = Decide(next, t);
        if (wait != Duration::zero()) return wait;
        if (overflow_tat_.compare_exchange_weak(seen, next, std::memory_order_relaxed)) {
          return wait;
        }
      }
    }
    it = shard.tats.emplace(std::string(key), 0).first;
  }
  return Decide(it->second, t);
}

}  // namespace ferry::proxy::filters
