#include "resilience/backoff.hpp"

#include <gtest/gtest.h>

namespace ferry::resilience {
namespace {

using std::chrono::milliseconds;

TEST(Backoff, GrowsExponentiallyUpToMaxWithFullJitter) {
  config::RetryBackoff b;  // 25ms, max 1s, x2
  EXPECT_EQ(BackoffDelay(b, 1, 0.0), Duration::zero());
  EXPECT_EQ(BackoffDelay(b, 1, 0.5), milliseconds(12) + std::chrono::microseconds(500));
  EXPECT_EQ(BackoffDelay(b, 2, 1.0), milliseconds(50));
  EXPECT_EQ(BackoffDelay(b, 3, 1.0), milliseconds(100));
  EXPECT_EQ(BackoffDelay(b, 10, 1.0), milliseconds(1000));  // 25ms * 512 capped
  EXPECT_EQ(BackoffDelay(b, 30, 0.5), milliseconds(500));
}

TEST(Backoff, MultiplierOneIsConstant) {
  config::RetryBackoff b{milliseconds(40), milliseconds(100), 1.0};
  EXPECT_EQ(BackoffDelay(b, 5, 1.0), milliseconds(40));
}

TEST(RetryAfter, DeltaSecondsOnly) {
  EXPECT_EQ(ParseRetryAfter("3"), std::chrono::seconds(3));
  EXPECT_EQ(ParseRetryAfter(" 0 "), std::chrono::seconds(0));
  EXPECT_EQ(ParseRetryAfter("99999"), std::chrono::seconds(3600));
  EXPECT_FALSE(ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT"));
  EXPECT_FALSE(ParseRetryAfter("-1"));
  EXPECT_FALSE(ParseRetryAfter(""));
}

}  // namespace
}  // namespace ferry::resilience
