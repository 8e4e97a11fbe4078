#include "resilience/circuit_breaker.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/units.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::resilience {

std::string_view StateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

std::string_view ModeName(BreakerMode mode) {
  switch (mode) {
    case BreakerMode::kAuto:
      return "auto";
    case BreakerMode::kForcedOpen:
      return "open";
    case BreakerMode::kForcedClosed:
      return "closed";
  }
  return "auto";
}

std::optional<BreakerMode> ParseMode(std::string_view text) {
  if (text == "auto") return BreakerMode::kAuto;
  if (text == "open") return BreakerMode::kForcedOpen;
  if (text == "closed") return BreakerMode::kForcedClosed;
  return std::nullopt;
}

CircuitBreaker::CircuitBreaker(std::string service,
                               std::optional<config::CircuitBreakerPolicy> policy,
                               const Clock& clock, observability::MetricsRegistry* registry)
    : service_(std::move(service)), clock_(clock) {
  if (registry != nullptr) {
    slot_ = registry->main_slot();
    auto gauge = registry->AddGauge("ferry_circuit_breaker_state",
                                    "A service's circuit breaker: 0 closed, 1 open, 2 half-open.",
                                    {"service"});
    auto counter = registry->AddCounter("ferry_circuit_breaker_transitions_total",
                                        "Circuit breaker state changes, by the state entered.",
                                        {"service", "to"});
    if (gauge) state_gauge_ = &(*gauge)->Get(service_);
    if (counter) {
      for (BreakerState s : {BreakerState::kClosed, BreakerState::kOpen, BreakerState::kHalfOpen}) {
        transitions_[static_cast<std::size_t>(s)] = &(*counter)->Get(service_, StateName(s));
      }
    }
  }
  Reconfigure(std::move(policy));
}

BreakerMode CircuitBreaker::mode() const {
  std::lock_guard lock(mutex_);
  return mode_;
}

std::optional<config::CircuitBreakerPolicy> CircuitBreaker::policy() const {
  std::lock_guard lock(mutex_);
  return policy_;
}

void CircuitBreaker::Reconfigure(std::optional<config::CircuitBreakerPolicy> policy) {
  std::lock_guard lock(mutex_);
  const bool same_window = policy && policy_ && policy->window == policy_->window;
  policy_ = std::move(policy);
  if (!same_window) {
    const std::int64_t window = policy_ ? policy_->window.count() : 0;
    bucket_ns_.store(std::max<std::int64_t>(1, window / kBuckets), std::memory_order_relaxed);
    ClearWindow();
  }
  counting_.store(policy_.has_value() && mode_ == BreakerMode::kAuto, std::memory_order_relaxed);
  if (!policy_ && mode_ == BreakerMode::kAuto && state_.load() != BreakerState::kClosed) {
    MoveTo(BreakerState::kClosed, "its policy has no circuit_breaker any more");
  }
}

void CircuitBreaker::SetMode(BreakerMode mode) {
  std::lock_guard lock(mutex_);
  if (mode == mode_) return;
  mode_ = mode;
  counting_.store(policy_.has_value() && mode_ == BreakerMode::kAuto, std::memory_order_relaxed);
  trials_in_flight_ = 0;
  ClearWindow();
  switch (mode) {
    case BreakerMode::kForcedOpen:
      spdlog::warn("circuit breaker {}: forced open by the admin API", service_);
      MoveTo(BreakerState::kOpen, "forced open");
      break;
    case BreakerMode::kForcedClosed:
      spdlog::warn("circuit breaker {}: forced closed by the admin API", service_);
      MoveTo(BreakerState::kClosed, "forced closed");
      break;
    case BreakerMode::kAuto:
      // Back to automatic from a clean start: a still-failing service opens it again.
      spdlog::info("circuit breaker {}: automatic again (admin API)", service_);
      MoveTo(BreakerState::kClosed, "back to automatic");
      break;
  }
}

Admission CircuitBreaker::AllowSlow() {
  std::lock_guard lock(mutex_);
  if (mode_ == BreakerMode::kForcedOpen) return Admission::kRejected;
  switch (state_.load(std::memory_order_relaxed)) {
    case BreakerState::kClosed:
      return Admission::kAllowed;
    case BreakerState::kOpen:
      if (!OpenTimeOver()) return Admission::kRejected;
      trials_in_flight_ = 0;
      MoveTo(BreakerState::kHalfOpen, "open time over: trial requests go through");
      break;
    case BreakerState::kHalfOpen:
      break;
  }
  const std::uint32_t trials =
      policy_ ? std::max<std::uint32_t>(1, policy_->half_open_requests) : 1;
  if (trials_in_flight_ >= trials) return Admission::kRejected;
  ++trials_in_flight_;
  return Admission::kTrial;
}

Duration CircuitBreaker::OpenTimeLeft() const {
  std::lock_guard lock(mutex_);
  if (mode_ != BreakerMode::kAuto ||
      state_.load(std::memory_order_relaxed) != BreakerState::kOpen) {
    return Duration::zero();
  }
  const Duration open_for = policy_ ? policy_->open_for : Duration::zero();
  const Duration left = open_for - (clock_.now() - opened_at_);
  return left > Duration::zero() ? left : Duration::zero();
}

bool CircuitBreaker::WouldAllow() const {
  if (state_.load(std::memory_order_acquire) == BreakerState::kClosed) return true;
  std::lock_guard lock(mutex_);
  if (mode_ == BreakerMode::kForcedOpen) return false;
  switch (state_.load(std::memory_order_relaxed)) {
    case BreakerState::kClosed:
      return true;
    case BreakerState::kOpen:
      return OpenTimeOver();
    case BreakerState::kHalfOpen:
      return trials_in_flight_ <
             (policy_ ? std::max<std::uint32_t>(1, policy_->half_open_requests) : 1);
  }
  return true;
}

void CircuitBreaker::Cancel(Admission admission) {
  if (admission != Admission::kTrial) return;
  std::lock_guard lock(mutex_);
  if (trials_in_flight_ > 0) --trials_in_flight_;
}

void CircuitBreaker::RecordSlow(Admission admission, bool failure) {
  if (admission == Admission::kRejected) return;
  if (admission == Admission::kAllowed) {
    // A failure of a normal try: count it, then see whether the window now trips the breaker.
    if (!counting_.load(std::memory_order_relaxed)) return;
    Count(true);
    std::lock_guard lock(mutex_);
    if (mode_ != BreakerMode::kAuto || !policy_ ||
        state_.load(std::memory_order_relaxed) != BreakerState::kClosed) {
      return;
    }
    const auto [tries, failures] = WindowCounts(EpochNow());
    if (tries < std::max<std::uint32_t>(1, policy_->min_requests)) return;
    if (static_cast<double>(failures) < policy_->failure_ratio * static_cast<double>(tries)) {
      return;
    }
    opened_at_ = clock_.now();
    MoveTo(BreakerState::kOpen, fmt::format("{} of {} tries failed in {}", failures, tries,
                                            FormatDuration(policy_->window)));
    return;
  }
  // A trial's result decides, if the breaker is still half-open and automatic.
  std::lock_guard lock(mutex_);
  if (trials_in_flight_ > 0) --trials_in_flight_;
  if (mode_ != BreakerMode::kAuto ||
      state_.load(std::memory_order_relaxed) != BreakerState::kHalfOpen) {
    return;
  }
  if (failure) {
    opened_at_ = clock_.now();
    trials_in_flight_ = 0;
    MoveTo(BreakerState::kOpen, "a trial request failed");
  } else {
    ClearWindow();
    MoveTo(BreakerState::kClosed, "a trial request succeeded");
  }
}

std::uint64_t CircuitBreaker::EpochNow() const {
  const auto ns = clock_.now().time_since_epoch().count();
  return static_cast<std::uint64_t>(ns / bucket_ns_.load(std::memory_order_relaxed));
}

void CircuitBreaker::Count(bool failure) {
  const std::uint64_t epoch = EpochNow() & kEpochMask;
  auto& bucket = buckets_[epoch % kBuckets];
  std::uint64_t old = bucket.load(std::memory_order_relaxed);
  for (;;) {
    std::uint64_t tries = 0;
    std::uint64_t failures = 0;
    if ((old >> (2 * kCountBits)) == epoch) {
      tries = (old >> kCountBits) & kCountMax;
      failures = old & kCountMax;
    }
    if (tries == kCountMax) return;  // saturated: the ratio stays as it is
    ++tries;
    if (failure) ++failures;
    const std::uint64_t next = (epoch << (2 * kCountBits)) | (tries << kCountBits) | failures;
    if (bucket.compare_exchange_weak(old, next, std::memory_order_relaxed)) return;
  }
}

std::pair<std::uint64_t, std::uint64_t> CircuitBreaker::WindowCounts(std::uint64_t epoch) const {
  std::uint64_t tries = 0;
  std::uint64_t failures = 0;
  for (const auto& bucket : buckets_) {
    const std::uint64_t word = bucket.load(std::memory_order_relaxed);
    const std::uint64_t age = (epoch - (word >> (2 * kCountBits))) & kEpochMask;
    if (age >= kBuckets) continue;
    tries += (word >> kCountBits) & kCountMax;
    failures += word & kCountMax;
  }
  return {tries, failures};
}

void CircuitBreaker::ClearWindow() {
  // Zero counts add nothing to any window, whatever their epoch.
  for (auto& bucket : buckets_) bucket.store(0, std::memory_order_relaxed);
}

bool CircuitBreaker::OpenTimeOver() const {
  const Duration open_for = policy_ ? policy_->open_for : Duration::zero();
  return clock_.now() - opened_at_ >= open_for;
}

void CircuitBreaker::MoveTo(BreakerState to, std::string_view why) {
  const BreakerState from = state_.load(std::memory_order_relaxed);
  if (from == to) return;
  state_.store(to, std::memory_order_release);
  if (to == BreakerState::kOpen) {
    spdlog::warn("circuit breaker {}: {} -> {} ({})", service_, StateName(from), StateName(to),
                 why);
  } else {
    spdlog::info("circuit breaker {}: {} -> {} ({})", service_, StateName(from), StateName(to),
                 why);
  }
  if (state_gauge_ != nullptr) state_gauge_->Set(slot_, static_cast<std::int64_t>(to));
  if (auto* c = transitions_[static_cast<std::size_t>(to)]) c->Add(slot_);
}

}  // namespace ferry::resilience
