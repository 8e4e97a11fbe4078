#include "resilience/retry_budget.hpp"

namespace ferry::resilience {

std::int64_t RetryBudget::SecondOf(TimePoint now) {
  return std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
}

void RetryBudget::Bump(TimePoint now, bool retry) {
  const std::int64_t second = SecondOf(now);
  Bucket& bucket = buckets_[static_cast<std::size_t>(second % kWindowSeconds)];
  std::int64_t seen = bucket.second.load(std::memory_order_acquire);
  if (seen != second && seen < second &&
      bucket.second.compare_exchange_strong(seen, second, std::memory_order_acq_rel)) {
    bucket.requests.store(0, std::memory_order_relaxed);
    bucket.retries.store(0, std::memory_order_relaxed);
  }
  (retry ? bucket.retries : bucket.requests).fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t RetryBudget::Sum(TimePoint now, bool retry) const {
  const std::int64_t second = SecondOf(now);
  std::uint64_t total = 0;
  for (const Bucket& bucket : buckets_) {
    const std::int64_t s = bucket.second.load(std::memory_order_acquire);
    if (s > second - kWindowSeconds && s <= second) {
      total += (retry ? bucket.retries : bucket.requests).load(std::memory_order_relaxed);
    }
  }
  return total;
}

std::uint64_t RetryBudget::requests(TimePoint now) const { return Sum(now, false); }
std::uint64_t RetryBudget::retries(TimePoint now) const { return Sum(now, true); }

bool RetryBudget::TryWithdraw(TimePoint now, const config::RetryBudget& budget) {
  const double allowed = budget.ratio * static_cast<double>(requests(now)) +
                         static_cast<double>(budget.min_per_second) * kWindowSeconds;
  if (static_cast<double>(retries(now)) + 1 > allowed) return false;
  Bump(now, /*retry=*/true);
  return true;
}

}  // namespace ferry::resilience
