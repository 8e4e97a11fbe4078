#include "proxy/filters/token_bucket.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace ferry::proxy::filters {
namespace {

using namespace std::chrono_literals;
using TimePoint = TokenBucket::TimePoint;

const TimePoint kStart{std::chrono::hours(1)};

TEST(TokenBucketTest, BurstThenRefillAtTheRate) {
  TokenBucket bucket(10, 3);  // a token every 100ms, 3 at most
  for (int i = 0; i < 3; ++i) EXPECT_EQ(bucket.Take(kStart), 0ns) << i;
  const auto wait = bucket.Take(kStart);
  EXPECT_EQ(wait, 100ms);
  EXPECT_EQ(bucket.Take(kStart + 50ms), 50ms);  // a refused take costs nothing
  EXPECT_EQ(bucket.Take(kStart + 100ms), 0ns);
  EXPECT_GT(bucket.Take(kStart + 100ms), 0ns);
  // A long pause refills to the burst, not beyond.
  int taken = 0;
  while (bucket.Take(kStart + 10s) == 0ns) ++taken;
  EXPECT_EQ(taken, 3);
}

TEST(TokenBucketTest, FractionalRates) {
  TokenBucket bucket(0.5, 1);  // one per two seconds
  EXPECT_EQ(bucket.Take(kStart), 0ns);
  EXPECT_EQ(bucket.Take(kStart + 1s), 1s);
  EXPECT_EQ(bucket.Take(kStart + 2s), 0ns);
}

TEST(TokenBucketTest, KeysHaveTheirOwnBuckets) {
  TokenBucket bucket(1, 2);
  EXPECT_EQ(bucket.Take("10.0.0.1", kStart), 0ns);
  EXPECT_EQ(bucket.Take("10.0.0.1", kStart), 0ns);
  EXPECT_GT(bucket.Take("10.0.0.1", kStart), 0ns);
  EXPECT_EQ(bucket.Take("10.0.0.2", kStart), 0ns);
  EXPECT_EQ(bucket.Take("", kStart), 0ns);  // no header: its own shared bucket
  // The route-wide bucket is separate from keyed ones.
  EXPECT_EQ(bucket.Take(kStart), 0ns);
}

TEST(TokenBucketTest, ManyNewKeysShareTheOverflowBucketAndCannotResetOthers) {
  TokenBucket bucket(1, 1);
  EXPECT_EQ(bucket.Take("victim", kStart), 0ns);
  int admitted = 0;
  for (std::size_t i = 0; i < TokenBucket::kMaxKeys * 2; ++i) {
    if (bucket.Take("k" + std::to_string(i), kStart) == 0ns) ++admitted;
  }
  // Every tracked key got its one token; past the table's size, new keys share one bucket.
  EXPECT_LE(admitted, static_cast<int>(TokenBucket::kMaxKeys) + 1);
  EXPECT_GE(admitted, static_cast<int>(TokenBucket::kMaxKeys) / 2);
  EXPECT_GT(bucket.Take("victim", kStart), 0ns);  // still limited
}

TEST(TokenBucketTest, FullBucketsAreForgottenWhenTheTableFills) {
  TokenBucket bucket(1000, 1);
  for (std::size_t i = 0; i < TokenBucket::kMaxKeys; ++i) {
    (void)bucket.Take("a" + std::to_string(i), kStart);
  }
  // A second later every bucket is full again: new keys get their own, not the overflow one.
  int admitted = 0;
  for (int i = 0; i < 100; ++i) {
    if (bucket.Take("b" + std::to_string(i), kStart + 1s) == 0ns) ++admitted;
  }
  EXPECT_EQ(admitted, 100);
}

TEST(TokenBucketTest, ThreadsNeverTakeMoreThanTheBurst) {
  TokenBucket bucket(1, 1000);
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (bucket.Take(kStart) == 0ns) ++taken;
        if (bucket.Take("shared", kStart) == 0ns) ++taken;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), 2000);  // 1000 from the route's bucket, 1000 from the key's
}

}  // namespace
}  // namespace ferry::proxy::filters
