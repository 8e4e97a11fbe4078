#include "resilience/circuit_breaker.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "observability/metrics_registry.hpp"

namespace ferry::resilience {
namespace {

using namespace std::chrono_literals;

config::CircuitBreakerPolicy Policy() {
  config::CircuitBreakerPolicy p;
  p.failure_ratio = 0.5;
  p.min_requests = 4;
  p.window = 10s;
  p.open_for = 5s;
  p.half_open_requests = 1;
  return p;
}

void Try(CircuitBreaker& b, bool failure) {
  const Admission a = b.Allow();
  ASSERT_NE(a, Admission::kRejected);
  b.Record(a, failure);
}

TEST(CircuitBreaker, OpensWhenTheFailureRatioIsReachedWithEnoughRequests) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  Try(b, false);
  Try(b, true);
  Try(b, true);  // 2 of 3 failed, but under min_requests
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  Try(b, true);  // 3 of 4
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_EQ(b.Allow(), Admission::kRejected);
  EXPECT_FALSE(b.WouldAllow());
}

// Only a failure can open it (a success keeps the closed path lock-free): a window at the
// ratio opens at its next failure.
TEST(CircuitBreaker, ASuccessNeverOpensIt) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  Try(b, true);
  Try(b, true);
  Try(b, true);
  Try(b, false);  // 3 of 4, reached by a success
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  Try(b, true);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, StaysClosedUnderTheRatio) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  for (int i = 0; i < 30; ++i) Try(b, i % 3 == 2);  // a third fail
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, FailuresOlderThanTheWindowDoNotCount) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  Try(b, true);
  Try(b, true);
  Try(b, true);
  clock.Advance(11s);
  Try(b, true);  // 1 of 1 in the window: under min_requests
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  Try(b, false);
  Try(b, false);
  Try(b, false);  // 1 of 4
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, HalfOpenAfterOpenForLetsOneTrialThroughAndItsSuccessCloses) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  for (int i = 0; i < 4; ++i) Try(b, true);
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  clock.Advance(4s);
  EXPECT_EQ(b.Allow(), Admission::kRejected);
  clock.Advance(1s);
  EXPECT_TRUE(b.WouldAllow());
  const Admission trial = b.Allow();
  EXPECT_EQ(trial, Admission::kTrial);
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  EXPECT_EQ(b.Allow(), Admission::kRejected);  // one trial at a time
  EXPECT_FALSE(b.WouldAllow());
  b.Record(trial, false);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  // The window starts empty: three failures are under min_requests again.
  Try(b, true);
  Try(b, true);
  Try(b, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, OpenTimeLeftIsTheRestOfOpenForWhileOpenByItself) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  EXPECT_EQ(b.OpenTimeLeft(), 0s);  // closed
  for (int i = 0; i < 4; ++i) Try(b, true);
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_EQ(b.OpenTimeLeft(), 5s);
  clock.Advance(3s);
  EXPECT_EQ(b.OpenTimeLeft(), 2s);
  clock.Advance(3s);
  EXPECT_EQ(b.OpenTimeLeft(), 0s);  // a trial may go now
  b.SetMode(BreakerMode::kForcedOpen);
  EXPECT_EQ(b.OpenTimeLeft(), 0s);  // open until an operator says otherwise: no promise
}

TEST(CircuitBreaker, AFailedTrialReopensForAnotherOpenFor) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  for (int i = 0; i < 4; ++i) Try(b, true);
  clock.Advance(5s);
  const Admission trial = b.Allow();
  ASSERT_EQ(trial, Admission::kTrial);
  clock.Advance(1s);
  b.Record(trial, true);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  clock.Advance(4s);
  EXPECT_EQ(b.Allow(), Admission::kRejected);
  clock.Advance(1s);
  EXPECT_EQ(b.Allow(), Admission::kTrial);
}

TEST(CircuitBreaker, ACancelledTrialGivesItsSlotBack) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  for (int i = 0; i < 4; ++i) Try(b, true);
  clock.Advance(5s);
  const Admission trial = b.Allow();
  ASSERT_EQ(trial, Admission::kTrial);
  b.Cancel(trial);
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  EXPECT_EQ(b.Allow(), Admission::kTrial);
}

TEST(CircuitBreaker, ResultsOfTriesAdmittedBeforeItOpenedDecideNothing) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  const Admission early = b.Allow();
  for (int i = 0; i < 4; ++i) Try(b, true);
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  b.Record(early, false);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  clock.Advance(5s);
  const Admission trial = b.Allow();
  b.Record(Admission::kAllowed, false);  // a late normal success does not close it
  EXPECT_EQ(b.state(), BreakerState::kHalfOpen);
  b.Record(trial, false);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
}

TEST(CircuitBreaker, ForcedModes) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  b.SetMode(BreakerMode::kForcedOpen);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  clock.Advance(1h);  // forced open has no open_for
  EXPECT_EQ(b.Allow(), Admission::kRejected);
  EXPECT_FALSE(b.WouldAllow());

  b.SetMode(BreakerMode::kForcedClosed);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  for (int i = 0; i < 50; ++i) Try(b, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);

  b.SetMode(BreakerMode::kAuto);
  EXPECT_EQ(b.mode(), BreakerMode::kAuto);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  for (int i = 0; i < 4; ++i) Try(b, true);  // counted from the switch, not before
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, WithoutAPolicyItNeverOpensByItselfButCanBeForced) {
  FakeClock clock;
  CircuitBreaker b("svc", std::nullopt, clock, nullptr);
  for (int i = 0; i < 100; ++i) Try(b, true);
  EXPECT_EQ(b.state(), BreakerState::kClosed);
  b.SetMode(BreakerMode::kForcedOpen);
  EXPECT_EQ(b.Allow(), Admission::kRejected);
}

TEST(CircuitBreaker, ReconfigureKeepsTheState) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  for (int i = 0; i < 4; ++i) Try(b, true);
  ASSERT_EQ(b.state(), BreakerState::kOpen);
  auto longer = Policy();
  longer.open_for = 20s;
  b.Reconfigure(longer);
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  clock.Advance(10s);
  EXPECT_EQ(b.Allow(), Admission::kRejected);  // the new open_for applies
  clock.Advance(10s);
  EXPECT_EQ(b.Allow(), Admission::kTrial);
}

TEST(CircuitBreaker, ReconfigureWithTheSameWindowKeepsItsCounts) {
  FakeClock clock;
  CircuitBreaker b("svc", Policy(), clock, nullptr);
  Try(b, true);
  Try(b, true);
  Try(b, true);
  auto p = Policy();
  p.failure_ratio = 0.9;
  b.Reconfigure(p);
  Try(b, true);  // 4 of 4
  EXPECT_EQ(b.state(), BreakerState::kOpen);
}

TEST(CircuitBreaker, CountsTransitionsAndSetsTheStateGauge) {
  FakeClock clock;
  observability::MetricsRegistry registry(2);
  CircuitBreaker b("svc", Policy(), clock, &registry);
  for (int i = 0; i < 4; ++i) Try(b, true);
  clock.Advance(5s);
  const Admission trial = b.Allow();
  auto text = registry.RenderPrometheus();
  EXPECT_NE(text.find("ferry_circuit_breaker_state{service=\"svc\"} 2"), std::string::npos) << text;
  b.Record(trial, false);
  text = registry.RenderPrometheus();
  EXPECT_NE(text.find("ferry_circuit_breaker_transitions_total{service=\"svc\",to=\"open\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(
      text.find("ferry_circuit_breaker_transitions_total{service=\"svc\",to=\"half_open\"} 1"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("ferry_circuit_breaker_transitions_total{service=\"svc\",to=\"closed\"} 1"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("ferry_circuit_breaker_state{service=\"svc\"} 0"), std::string::npos) << text;
}

TEST(CircuitBreaker, ManyThreadsOfFailuresOpenItOnce) {
  FakeClock clock;  // not advanced: read concurrently only
  observability::MetricsRegistry registry(1);
  auto p = Policy();
  p.min_requests = 100;
  CircuitBreaker b("svc", p, clock, &registry);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&b] {
      for (int i = 0; i < 1000; ++i) {
        const Admission a = b.Allow();
        b.Record(a, true);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.state(), BreakerState::kOpen);
  EXPECT_NE(registry.RenderPrometheus().find(
                "ferry_circuit_breaker_transitions_total{service=\"svc\",to=\"open\"} 1"),
            std::string::npos);
}

TEST(CircuitBreaker, ModeNames) {
  EXPECT_EQ(ParseMode("open"), BreakerMode::kForcedOpen);
  EXPECT_EQ(ParseMode("closed"), BreakerMode::kForcedClosed);
  EXPECT_EQ(ParseMode("auto"), BreakerMode::kAuto);
  EXPECT_EQ(ParseMode("Open"), std::nullopt);
  EXPECT_EQ(ModeName(BreakerMode::kForcedOpen), "open");
  EXPECT_EQ(StateName(BreakerState::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace ferry::resilience
