#include "resilience/concurrency_limiter.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "observability/metrics_registry.hpp"

namespace ferry::resilience {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

config::ConcurrencyPolicy Limit(std::uint32_t max, std::uint32_t queue) {
  config::ConcurrencyPolicy p;
  p.max = max;
  p.queue = queue;
  return p;
}

// Acquires a slot, holds it for `hold`, and records what happened.
struct Outcome {
  std::optional<ErrorCode> error;  // nullopt: got a slot
  std::thread::id resumed_on;
  bool done = false;
};

Task<void> Use(ConcurrencyLimiter& limiter, Clock::time_point deadline, Duration hold,
               Outcome* out) {
  auto permit = co_await limiter.Acquire(deadline);
  out->resumed_on = std::this_thread::get_id();
  if (!permit) {
    out->error = permit.error().code();
  } else if (hold > Duration::zero()) {
    asio::steady_timer timer(co_await asio::this_coro::executor, hold);
    co_await timer.async_wait(kNoThrow);
  }
  out->done = true;
}

TEST(ConcurrencyLimiter, WithoutAPolicyEveryRequestGoesAtOnce) {
  ConcurrencyLimiter limiter("svc", std::nullopt, nullptr);
  auto a = limiter.TryAcquire();
  auto b = limiter.TryAcquire();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(a->holds_slot());
  EXPECT_EQ(limiter.in_flight(), 0u);
}

TEST(ConcurrencyLimiter, MaxInFlightThenQueueThenRefused) {
  asio::io_context io;
  ConcurrencyLimiter limiter("svc", Limit(2, 1), nullptr);
  const auto deadline = Clock::now() + 10s;
  Outcome o[5];
  for (auto& out : o) asio::co_spawn(io, Use(limiter, deadline, 50ms, &out), asio::detached);
  io.run_for(20ms);
  EXPECT_EQ(limiter.in_flight(), 2u);
  EXPECT_EQ(limiter.queued(), 1u);
  io.run();
  int served = 0;
  int refused = 0;
  for (auto& out : o) {
    ASSERT_TRUE(out.done);
    if (!out.error) ++served;
    if (out.error == ErrorCode::kResourceExhausted) ++refused;
  }
  EXPECT_EQ(served, 3);
  EXPECT_EQ(refused, 2);
  EXPECT_EQ(limiter.in_flight(), 0u);
  EXPECT_EQ(limiter.queued(), 0u);
}

TEST(ConcurrencyLimiter, AWaiterGivesUpAtItsDeadline) {
  asio::io_context io;
  observability::MetricsRegistry registry(1);
  ConcurrencyLimiter limiter("svc", Limit(1, 5), &registry);
  auto held = limiter.TryAcquire();
  ASSERT_TRUE(held && held->holds_slot());
  Outcome waiter;
  const auto start = Clock::now();
  asio::co_spawn(io, Use(limiter, start + 30ms, Duration::zero(), &waiter), asio::detached);
  io.run();
  EXPECT_EQ(waiter.error, ErrorCode::kDeadlineExceeded);
  EXPECT_GE(Clock::now() - start, 30ms);
  EXPECT_EQ(limiter.queued(), 0u);
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("ferry_upstream_concurrency_rejected_total{service=\"svc\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ferry_upstream_concurrency_in_flight{service=\"svc\"} 1"), std::string::npos)
      << text;
  held.reset();
  EXPECT_EQ(limiter.in_flight(), 0u);
}

TEST(ConcurrencyLimiter, ASlotFreedOnAnotherThreadResumesTheWaiterOnItsOwn) {
  ConcurrencyLimiter limiter("svc", Limit(1, 1), nullptr);
  auto held = limiter.TryAcquire();
  ASSERT_TRUE(held);
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  Outcome waiter;
  asio::co_spawn(io, Use(limiter, Clock::now() + 10s, Duration::zero(), &waiter), asio::detached);
  std::thread::id loop_thread;
  std::thread loop([&] {
    loop_thread = std::this_thread::get_id();
    io.run();
  });
  while (limiter.queued() == 0) std::this_thread::sleep_for(1ms);
  std::thread releaser([&] { held.reset(); });  // frees the slot from a third thread
  releaser.join();
  for (int i = 0; i < 5000 && limiter.in_flight() != 0; ++i) std::this_thread::sleep_for(1ms);
  work.reset();
  loop.join();
  EXPECT_TRUE(waiter.done);
  EXPECT_FALSE(waiter.error);
  EXPECT_EQ(waiter.resumed_on, loop_thread);
  EXPECT_EQ(limiter.in_flight(), 0u);
}

TEST(ConcurrencyLimiter, ManyThreadsNeverHoldMoreThanMax) {
  ConcurrencyLimiter limiter("svc", Limit(3, 1000), nullptr);
  std::atomic<int> holding{0};
  std::atomic<int> most{0};
  std::atomic<int> served{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      asio::io_context io;
      for (int i = 0; i < 50; ++i) {
        asio::co_spawn(
            io,
            [](ConcurrencyLimiter& l, std::atomic<int>& holding, std::atomic<int>& most,
               std::atomic<int>& served) -> Task<void> {
              auto permit = co_await l.Acquire(Clock::now() + 60s);
              if (!permit) co_return;
              const int now = ++holding;
              int seen = most.load();
              while (now > seen && !most.compare_exchange_weak(seen, now)) {
              }
              asio::steady_timer timer(co_await asio::this_coro::executor, 1ms);
              co_await timer.async_wait(kNoThrow);
              --holding;
              ++served;
            }(limiter, holding, most, served),
            asio::detached);
      }
      io.run();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(served.load(), 200);
  EXPECT_LE(most.load(), 3);
  EXPECT_EQ(limiter.in_flight(), 0u);
}

TEST(ConcurrencyLimiter, ALargerMaxOnReloadLetsWaitersIn) {
  asio::io_context io;
  ConcurrencyLimiter limiter("svc", Limit(1, 5), nullptr);
  auto held = limiter.TryAcquire();
  Outcome a, b;
  asio::co_spawn(io, Use(limiter, Clock::now() + 10s, Duration::zero(), &a), asio::detached);
  asio::co_spawn(io, Use(limiter, Clock::now() + 10s, Duration::zero(), &b), asio::detached);
  io.run_for(10ms);
  EXPECT_EQ(limiter.queued(), 2u);
  limiter.Reconfigure(Limit(3, 5));
  io.run_for(50ms);
  EXPECT_TRUE(a.done && b.done);
  EXPECT_FALSE(a.error);
  EXPECT_FALSE(b.error);
  EXPECT_EQ(limiter.in_flight(), 1u);  // theirs were released, `held` remains
}

}  // namespace
}  // namespace ferry::resilience
