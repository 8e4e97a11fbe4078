// RateMeter: per-second rates over the last minute from samples of monotonic counters.
#include "bus/engine/rate_meter.hpp"

#include <gtest/gtest.h>

namespace ferry::bus {
namespace {

using namespace std::chrono_literals;
using Meter = RateMeter<2>;

const BusTime kStart = BusTime(std::chrono::seconds(1'700'000'000));

TEST(RateMeterTest, NothingCountedIsZero) {
  Meter m(kStart, {7, 3});
  m.Sample(kStart + 5s, {7, 3});
  EXPECT_EQ(m.PerSecond(kStart + 9s, {7, 3}), (Meter::Rates{0, 0}));
}

TEST(RateMeterTest, ABurstShowsAtOnceOverAtLeastOneSecond) {
  Meter m(kStart, {0, 0});
  // Half a second after the start: counted over 1 s, not as 20 per second.
  EXPECT_EQ(m.PerSecond(kStart + 500ms, {10, 0}), (Meter::Rates{10, 0}));
  // No sample needed between: ten seconds after the start it is 10 over 10 s.
  EXPECT_EQ(m.PerSecond(kStart + 10s, {10, 4}), (Meter::Rates{1, 0.4}));
}

TEST(RateMeterTest, SteadyTrafficShowsItsRateAndFallsToZeroAMinuteAfterItStops) {
  Meter m(kStart, {0, 0});
  std::uint64_t a = 0;
  BusTime now = kStart;
  // 5 per second on the first counter for two minutes, sampled every second.
  for (int s = 0; s < 120; ++s) {
    now += 1s;
    a += 5;
    m.Sample(now, {a, 0});
  }
  EXPECT_DOUBLE_EQ(m.PerSecond(now, {a, 0})[0], 5.0);
  // It stops. Half a minute later about half the window still holds traffic.
  for (int s = 0; s < 30; ++s) {
    now += 1s;
    m.Sample(now, {a, 0});
  }
  const double half = m.PerSecond(now, {a, 0})[0];
  EXPECT_GT(half, 1.5);
  EXPECT_LT(half, 3.5);
  // A whole window after it stopped, nothing is left.
  for (int s = 0; s < 30; ++s) {
    now += 1s;
    m.Sample(now, {a, 0});
  }
  EXPECT_EQ(m.PerSecond(now, {a, 0}), (Meter::Rates{0, 0}));
}

TEST(RateMeterTest, WithoutRecentSamplesItAveragesSinceTheNewest) {
  Meter m(kStart, {0, 0});
  m.Sample(kStart + 5s, {50, 0});
  // Ten minutes without Sample: the 100 counted since the newest sample, over those 595 s.
  EXPECT_DOUBLE_EQ(m.PerSecond(kStart + 600s, {150, 0})[0], 100.0 / 595.0);
}

TEST(RateMeterTest, SamplesCloserThanTheIntervalAreSkipped) {
  Meter m(kStart, {0, 0});
  // Sampled ten times a second: the ring must still span the minute, so two quiet seconds
  // after a minute of 10 per second still show about 10 per second, not 0.
  std::uint64_t a = 0;
  BusTime now = kStart;
  for (int i = 0; i < 670; ++i) {
    now += 100ms;
    if (i < 650) a += 1;
    m.Sample(now, {a, 0});
  }
  const double rate = m.PerSecond(now, {a, 0})[0];
  EXPECT_GT(rate, 9.0);
  EXPECT_LT(rate, 10.5);
}

TEST(RateMeterTest, AClockThatGoesBackStartsAgain) {
  Meter m(kStart, {0, 0});
  m.Sample(kStart + 5s, {100, 0});
  m.Sample(kStart - 1h, {100, 0});
  EXPECT_EQ(m.PerSecond(kStart - 1h + 10s, {120, 0})[0], 2.0);
}

}  // namespace
}  // namespace ferry::bus
