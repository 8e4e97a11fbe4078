#include "resilience/concurrency_limiter.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/asio/this_coro.hpp>

#include "observability/metrics_registry.hpp"

namespace ferry::resilience {

// One request waiting for a slot. Its timer runs on the waiting coroutine's executor: the
// deadline fires it, and whoever grants the slot cancels it there (a post), so the waiter always
// resumes on its own thread. `granted` is read and written with the limiter's mutex held.
struct ConcurrencyLimiter::Waiter {
  explicit Waiter(const asio::any_io_executor& executor) : timer(executor) {}
  asio::steady_timer timer;
  bool granted = false;
};

void ConcurrencyLimiter::Permit::Reset() {
  if (limiter_ != nullptr) std::exchange(limiter_, nullptr)->Release();
}

ConcurrencyLimiter::ConcurrencyLimiter(std::string service,
                                       std::optional<config::ConcurrencyPolicy> policy,
                                       observability::MetricsRegistry* registry)
    : service_(std::move(service)), limited_(policy.has_value()), policy_(std::move(policy)) {
  if (registry != nullptr) {
    slot_ = registry->main_slot();
    auto gauge = registry->AddGauge("ferry_upstream_concurrency_in_flight",
                                    "Requests holding a slot of a service's concurrency limit.",
                                    {"service"});
    auto counter = registry->AddCounter(
        "ferry_upstream_concurrency_rejected_total",
        "Requests a service's concurrency limit refused (queue full, or deadline passed while "
        "queued).",
        {"service"});
    if (gauge) in_flight_gauge_ = &(*gauge)->Get(service_);
    if (counter) rejected_ = &(*counter)->Get(service_);
  }
}

ConcurrencyLimiter::~ConcurrencyLimiter() = default;

std::uint32_t ConcurrencyLimiter::in_flight() const {
  std::lock_guard lock(mutex_);
  return in_flight_;
}

std::size_t ConcurrencyLimiter::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

void ConcurrencyLimiter::PublishLocked() {
  if (in_flight_gauge_ != nullptr) in_flight_gauge_->Set(slot_, in_flight_);
}

std::optional<ConcurrencyLimiter::Permit> ConcurrencyLimiter::TryAcquire() {
  if (!limited_.load(std::memory_order_acquire)) return Permit();
  std::lock_guard lock(mutex_);
  if (!policy_) return Permit();
  if (in_flight_ >= policy_->max || !queue_.empty()) return std::nullopt;
  ++in_flight_;
  PublishLocked();
  return Permit(this);
}

Task<Result<ConcurrencyLimiter::Permit>> ConcurrencyLimiter::Acquire(TimePoint deadline) {
  if (!limited_.load(std::memory_order_acquire)) co_return Permit();
  const asio::any_io_executor executor = co_await asio::this_coro::executor;
  std::shared_ptr<Waiter> waiter;
  {
    std::lock_guard lock(mutex_);
    if (!policy_) co_return Permit();
    if (in_flight_ < policy_->max && queue_.empty()) {
      ++in_flight_;
      PublishLocked();
      co_return Permit(this);
    }
    if (queue_.size() >= policy_->queue) {
      if (rejected_ != nullptr) rejected_->Add(slot_);
      co_return Fail(ErrorCode::kResourceExhausted,
                     fmt::format("service {} has {} requests in flight and {} waiting (its "
                                 "concurrency limit)",
                                 service_, in_flight_, queue_.size()));
    }
    waiter = std::make_shared<Waiter>(executor);
    queue_.push_back(waiter);
  }

  // Leaves the queue however the wait ends: a granted slot the caller never took (the frame
  // destroyed mid-wait) goes back.
  struct Leave {
    ConcurrencyLimiter& limiter;
    std::shared_ptr<Waiter> waiter;
    bool done = false;
    ~Leave() {
      if (done) return;
      bool release = false;
      {
        std::lock_guard lock(limiter.mutex_);
        if (waiter->granted) {
          release = true;
        } else {
          std::erase(limiter.queue_, waiter);
        }
      }
      if (release) limiter.Release();
    }
  } leave{*this, waiter};

  waiter->timer.expires_at(deadline);
  const auto [ec] = co_await waiter->timer.async_wait(kNoThrow);
  std::lock_guard lock(mutex_);
  leave.done = true;
  if (waiter->granted) co_return Permit(this);
  std::erase(queue_, waiter);
  if (ec == asio::error::operation_aborted) {
    co_return Fail(ErrorCode::kCancelled, "cancelled while waiting for a slot");
  }
  if (rejected_ != nullptr) rejected_->Add(slot_);
  co_return Fail(ErrorCode::kDeadlineExceeded,
                 fmt::format("the deadline passed while waiting for a slot of service {}'s "
                             "concurrency limit",
                             service_));
}

void ConcurrencyLimiter::Release() {
  std::vector<std::shared_ptr<Waiter>> granted;
  {
    std::lock_guard lock(mutex_);
    if (in_flight_ > 0) --in_flight_;
    granted = GrantLocked();
    PublishLocked();
  }
  Wake(std::move(granted));
}

std::vector<std::shared_ptr<ConcurrencyLimiter::Waiter>> ConcurrencyLimiter::GrantLocked() {
  std::vector<std::shared_ptr<Waiter>> granted;
  const std::uint32_t max = policy_ ? policy_->max : std::numeric_limits<std::uint32_t>::max();
  while (!queue_.empty() && in_flight_ < max) {
    granted.push_back(std::move(queue_.front()));
    queue_.pop_front();
    granted.back()->granted = true;
    ++in_flight_;
  }
  return granted;
}

void ConcurrencyLimiter::Wake(std::vector<std::shared_ptr<Waiter>> granted) {
  for (auto& w : granted) {
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  }
}

void ConcurrencyLimiter::Reconfigure(std::optional<config::ConcurrencyPolicy> policy) {
  std::vector<std::shared_ptr<Waiter>> granted;
  {
    std::lock_guard lock(mutex_);
    policy_ = std::move(policy);
    limited_.store(policy_.has_value(), std::memory_order_release);
    granted = GrantLocked();
    PublishLocked();
  }
  Wake(std::move(granted));
}

}  // namespace ferry::resilience
