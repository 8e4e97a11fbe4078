// The retry budget of one service on this node, shared by all workers (atomics, no lock): over
// a sliding window of about 10 s, retries and hedges may reach `ratio` x the requests that
// started in it, plus `min_per_second` x the window's seconds (the floor, so a quiet service can
// still retry). A failing service so sees at most about (1 + ratio) x its normal load.
// The window is 10 one-second buckets; a bucket whose second has passed is reset by the first
// writer that sees it. Counts racing a reset may be lost: the budget is approximate by design.
// Thread safety: every call from any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "config/config.hpp"

namespace ferry::resilience {

class RetryBudget {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  static constexpr int kWindowSeconds = 10;

  // A request (its first try) started.
  void OnRequest(TimePoint now) { Bump(now, /*retry=*/false); }
  // A retry or hedge wants to go: true (and counted) if the budget allows it.
  bool TryWithdraw(TimePoint now, const config::RetryBudget& budget);

  // The window's totals (for tests and stats).
  std::uint64_t requests(TimePoint now) const;
  std::uint64_t retries(TimePoint now) const;

 private:
  struct Bucket {
    std::atomic<std::int64_t> second{-1};
    std::atomic<std::uint32_t> requests{0};
    std::atomic<std::uint32_t> retries{0};
  };
  static std::int64_t SecondOf(TimePoint now);
  void Bump(TimePoint now, bool retry);
  std::uint64_t Sum(TimePoint now, bool retry) const;

  std::array<Bucket, kWindowSeconds> buckets_;
};

}  // namespace ferry::resilience
