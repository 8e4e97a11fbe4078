// CircuitBreaker: one per service per node, shared by every worker (and the bus's push
// delivery). Closed, it counts tries and failures over a sliding `window` (ten buckets); when
// failures/tries reach `failure_ratio` with at least `min_requests` tries, it opens: every try
// fails fast (the caller answers 503 circuit_open and the upstream is not contacted). After
// `open_for` it is half-open: up to `half_open_requests` trial tries at once go through; a
// trial's success closes it (with an empty window), its failure opens it again. An operator can
// force it open or closed and give it back to automatic (the admin API).
// Thread safety: every method may be called from any thread. The closed path (Allow, and
// Record of a success) is lock-free and allocation-free: one atomic load, and one
// compare-and-swap on the current bucket; a failure, and everything while not closed, takes a
// small mutex. State changes are logged once (spdlog) and counted
// (ferry_circuit_breaker_transitions_total{service,to}, ferry_circuit_breaker_state{service}).
// Ownership: the breaker keeps references to the clock and to the registry's series; both must
// outlive it.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/clock.hpp"

namespace ferry::observability {
class MetricsRegistry;
class Counter;
class Gauge;
}  // namespace ferry::observability

namespace ferry::resilience {

enum class BreakerState : std::uint8_t {
  kClosed = 0,    // tries go through; the window counts them
  kOpen = 1,      // tries fail fast
  kHalfOpen = 2,  // a few trial tries go through
};

enum class BreakerMode : std::uint8_t {
  kAuto,          // the state follows the window and the timers
  kForcedOpen,    // an operator opened it: every try fails fast until mode changes
  kForcedClosed,  // an operator closed it: every try goes through, failures open nothing
};

// What Allow decided for one try; given back to Record (or Cancel) exactly once.
enum class Admission : std::uint8_t {
  kRejected,  // fail fast: do not contact the upstream (Record ignores it)
  kAllowed,   // a normal try
  kTrial,     // a half-open trial: its result closes or reopens the breaker
};

std::string_view StateName(BreakerState state);  // "closed", "open", "half_open"
std::string_view ModeName(BreakerMode mode);     // "auto", "open", "closed"
// "auto", "open", "closed" (the admin API's words); nullopt for anything else.
std::optional<BreakerMode> ParseMode(std::string_view text);

class CircuitBreaker {
 public:
  // policy: nullopt is a breaker that never opens by itself (it can still be forced).
  // registry: null in tests that do not look at metrics.
  CircuitBreaker(std::string service, std::optional<config::CircuitBreakerPolicy> policy,
                 const Clock& clock, observability::MetricsRegistry* registry);
  CircuitBreaker(const CircuitBreaker&) = delete;
  CircuitBreaker& operator=(const CircuitBreaker&) = delete;

  // Before each try (retries too).
  Admission Allow() {
    if (state_.load(std::memory_order_acquire) == BreakerState::kClosed) {
      return Admission::kAllowed;
    }
    return AllowSlow();
  }
  // After the try: failure = connect failure, reset, try timeout or a 5xx from the upstream.
  void Record(Admission admission, bool failure) {
    if (admission == Admission::kAllowed && !failure) {
      if (counting_.load(std::memory_order_relaxed)) Count(false);
      return;
    }
    RecordSlow(admission, failure);
  }
  // A try that was admitted but never made (nothing was sent: e.g. its caller gave up first):
  // a trial's slot is given back, nothing is counted.
  void Cancel(Admission admission);
  // Whether a try would be admitted now, without taking a trial slot: false while open (before
  // open_for ends), forced open, or half-open with every trial slot taken. For callers that
  // pause instead of failing (bus push delivery).
  bool WouldAllow() const;
  // How long until an open breaker lets a trial through (the rest of open_for), for a
  // Retry-After; zero when it is not open by itself (closed, half-open, or forced open, which
  // ends when an operator says so).
  Duration OpenTimeLeft() const;

  // A reload: the new policy applies from now on; the state (and, if the window is unchanged,
  // its counts) stays.
  void Reconfigure(std::optional<config::CircuitBreakerPolicy> policy);
  void SetMode(BreakerMode mode);

  BreakerState state() const { return state_.load(std::memory_order_acquire); }
  BreakerMode mode() const;
  const std::string& service() const { return service_; }
  std::optional<config::CircuitBreakerPolicy> policy() const;

 private:
  static constexpr int kBuckets = 10;
  // A bucket in one word: epoch (24 bits) | tries (20 bits) | failures (20 bits).
  static constexpr int kCountBits = 20;
  static constexpr std::uint64_t kCountMax = (std::uint64_t{1} << kCountBits) - 1;
  static constexpr std::uint64_t kEpochMask = (std::uint64_t{1} << 24) - 1;

  Admission AllowSlow();
  void RecordSlow(Admission admission, bool failure);
  void Count(bool failure);
  // Tries and failures in the window as of `epoch`. Called with mutex_ held.
  std::pair<std::uint64_t, std::uint64_t> WindowCounts(std::uint64_t epoch) const;
  std::uint64_t EpochNow() const;
  void ClearWindow();
  // Called with mutex_ held.
  void MoveTo(BreakerState to, std::string_view why);
  bool OpenTimeOver() const;  // mutex_ held

  const std::string service_;
  const Clock& clock_;
  std::atomic<BreakerState> state_{BreakerState::kClosed};
  std::atomic<bool> counting_{false};       // auto mode with a policy
  std::atomic<std::int64_t> bucket_ns_{1};  // window / kBuckets
  std::array<std::atomic<std::uint64_t>, kBuckets> buckets_{};

  mutable std::mutex mutex_;
  std::optional<config::CircuitBreakerPolicy> policy_;
  BreakerMode mode_ = BreakerMode::kAuto;
  std::chrono::steady_clock::time_point opened_at_{};
  std::uint32_t trials_in_flight_ = 0;

  // Written only with mutex_ held, always in one slot (any slot: the mutex orders the writes).
  observability::Gauge* state_gauge_ = nullptr;
  std::array<observability::Counter*, 3> transitions_{};  // by BreakerState
  std::size_t slot_ = 0;
};

}  // namespace ferry::resilience
