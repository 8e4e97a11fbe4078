// ConcurrencyLimiter: the bulkhead of one service (a policy's `concurrency: {max, queue}`), one
// per node, shared by every worker and the bus's push delivery. At most `max` requests hold a
// Permit at once; up to `queue` more wait for one, first come first served, each no longer
// than its deadline; beyond that a request is refused at once (kResourceExhausted: the caller
// answers 503 upstream_overloaded). A freed slot goes straight to the first waiter, which is
// resumed on its own executor (asio::post), whatever thread freed it.
// Metrics: ferry_upstream_concurrency_in_flight{service} (gauge) and
// ferry_upstream_concurrency_rejected_total{service} (queue full, or the deadline passed in the
// queue).
// Thread safety: every method may be called from any thread (one small mutex). Ownership: a
// Permit must not outlive its limiter (the node's per-service state keeps limiters for the
// life of the node); the registry's series must outlive the limiter.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "config/config.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"

namespace ferry::observability {
class MetricsRegistry;
class Counter;
class Gauge;
}  // namespace ferry::observability

namespace ferry::resilience {

class ConcurrencyLimiter {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // A slot held: given back when destroyed. An empty permit (no limit configured) holds none.
  class Permit {
   public:
    Permit() = default;
    Permit(Permit&& other) noexcept : limiter_(std::exchange(other.limiter_, nullptr)) {}
    Permit& operator=(Permit&& other) noexcept {
      if (this != &other) {
        Reset();
        limiter_ = std::exchange(other.limiter_, nullptr);
      }
      return *this;
    }
    ~Permit() { Reset(); }
    void Reset();
    bool holds_slot() const { return limiter_ != nullptr; }

   private:
    friend class ConcurrencyLimiter;
    explicit Permit(ConcurrencyLimiter* limiter) : limiter_(limiter) {}
    ConcurrencyLimiter* limiter_ = nullptr;
  };

  // policy: nullopt is no limit (every Acquire succeeds at once, nothing is counted).
  ConcurrencyLimiter(std::string service, std::optional<config::ConcurrencyPolicy> policy,
                     observability::MetricsRegistry* registry);
  ~ConcurrencyLimiter();
  ConcurrencyLimiter(const ConcurrencyLimiter&) = delete;
  ConcurrencyLimiter& operator=(const ConcurrencyLimiter&) = delete;

  // A slot now, or after waiting in the queue. Errors: kResourceExhausted (all slots taken and
  // the queue full), kDeadlineExceeded (the deadline passed while queued), kCancelled (the
  // waiting task was cancelled).
  Task<Result<Permit>> Acquire(TimePoint deadline);
  // A slot now, without waiting (and without queueing, or a coroutine frame: the request path
  // tries this first): nullopt when none is free or others wait already. Without a limit it
  // takes no lock.
  std::optional<Permit> TryAcquire();

  // A reload: a larger max lets waiters in at once; a smaller one lets nobody new in until the
  // requests in flight drop below it. Requests in flight and waiting stay.
  void Reconfigure(std::optional<config::ConcurrencyPolicy> policy);

  std::uint32_t in_flight() const;
  std::size_t queued() const;
  const std::string& service() const { return service_; }

 private:
  struct Waiter;

  void Release();
  // Hands free slots to waiters; returns those to wake. mutex_ held.
  std::vector<std::shared_ptr<Waiter>> GrantLocked();
  void Wake(std::vector<std::shared_ptr<Waiter>> granted);
  void PublishLocked();  // the in-flight gauge

  const std::string service_;
  std::atomic<bool> limited_{false};  // policy_ is set (read without the lock)
  mutable std::mutex mutex_;
  std::optional<config::ConcurrencyPolicy> policy_;
  std::uint32_t in_flight_ = 0;
  std::deque<std::shared_ptr<Waiter>> queue_;

  // Written only with mutex_ held, in one slot (the mutex orders the writes).
  observability::Gauge* in_flight_gauge_ = nullptr;
  observability::Counter* rejected_ = nullptr;
  std::size_t slot_ = 0;
};

}  // namespace ferry::resilience
