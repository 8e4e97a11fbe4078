#include "resilience/retry_budget.hpp"

#include <gtest/gtest.h>

#include "core/clock.hpp"

namespace ferry::resilience {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(RetryBudget, FloorAloneAllowsMinPerSecondTimesWindow) {
  FakeClock clock;
  RetryBudget budget;
  const config::RetryBudget cfg{0.2, 1};  // floor: 1/s over 10 s
  int allowed = 0;
  for (int i = 0; i < 50; ++i) allowed += budget.TryWithdraw(clock.now(), cfg) ? 1 : 0;
  EXPECT_EQ(allowed, 10);
}

TEST(RetryBudget, RatioOfRecentRequests) {
  FakeClock clock;
  RetryBudget budget;
  const config::RetryBudget cfg{0.2, 0};
  for (int i = 0; i < 100; ++i) budget.OnRequest(clock.now());
  int allowed = 0;
  for (int i = 0; i < 100; ++i) allowed += budget.TryWithdraw(clock.now(), cfg) ? 1 : 0;
  EXPECT_EQ(allowed, 20);
  EXPECT_EQ(budget.retries(clock.now()), 20u);
}

TEST(RetryBudget, WindowSlidesOldRequestsAndRetriesOut) {
  FakeClock clock;
  RetryBudget budget;
  const config::RetryBudget cfg{0.5, 0};
  for (int i = 0; i < 10; ++i) budget.OnRequest(clock.now());
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(budget.TryWithdraw(clock.now(), cfg));
  EXPECT_FALSE(budget.TryWithdraw(clock.now(), cfg));
  clock.Advance(seconds(5));
  EXPECT_EQ(budget.requests(clock.now()), 10u);  // still inside the window
  EXPECT_FALSE(budget.TryWithdraw(clock.now(), cfg));
  clock.Advance(seconds(6));
  EXPECT_EQ(budget.requests(clock.now()), 0u);
  EXPECT_EQ(budget.retries(clock.now()), 0u);
  for (int i = 0; i < 4; ++i) budget.OnRequest(clock.now());
  EXPECT_TRUE(budget.TryWithdraw(clock.now(), cfg));
  EXPECT_TRUE(budget.TryWithdraw(clock.now(), cfg));
  EXPECT_FALSE(budget.TryWithdraw(clock.now(), cfg));
}

TEST(RetryBudget, ABucketIsReusedAfterTheWindow) {
  FakeClock clock;
  RetryBudget budget;
  budget.OnRequest(clock.now());
  clock.Advance(seconds(RetryBudget::kWindowSeconds));  // the same bucket, ten seconds on
  budget.OnRequest(clock.now());
  EXPECT_EQ(budget.requests(clock.now()), 1u);
  clock.Advance(milliseconds(999));
  EXPECT_LE(budget.requests(clock.now()), 1u);
}

}  // namespace
}  // namespace ferry::resilience
