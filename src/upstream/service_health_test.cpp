// ServiceHealth: the ejection rules (threshold, growing ejection time, the max_ejected share,
// return when the time ends) and health-check transitions, on a time the test moves by hand.
#include "upstream/service_health.hpp"

#include <gtest/gtest.h>

namespace ferry::upstream {
namespace {

using namespace std::chrono_literals;
using TimePoint = ServiceHealth::TimePoint;

class ServiceHealthTest : public ::testing::Test {
 protected:
  ServiceHealthTest() {
    config::OutlierDetectionPolicy policy;
    policy.consecutive_failures = 3;
    policy.base_ejection = 10s;
    policy.max_ejection = 25s;
    policy.max_ejected = 0.5;
    health_.SetOutlierDetection(policy);
    health_.SetEndpoints({"a", "b", "c", "d"});
    a_ = health_.Status("a");
    b_ = health_.Status("b");
    c_ = health_.Status("c");
  }
  void Fail(EndpointStatus& status, int times) {
    for (int i = 0; i < times; ++i) health_.Failed(status, now_);
  }

  ServiceHealth health_{"svc"};
  std::shared_ptr<EndpointStatus> a_, b_, c_;
  TimePoint now_ = TimePoint{} + 1h;
};

TEST_F(ServiceHealthTest, EjectsAfterTheThresholdOfFailuresInARow) {
  Fail(*a_, 2);
  EXPECT_TRUE(a_->Usable(now_));
  health_.Succeeded(*a_);  // ends the streak
  Fail(*a_, 2);
  EXPECT_TRUE(a_->Usable(now_));
  EXPECT_EQ(health_.usable_hint(), 0u);
  Fail(*a_, 1);
  EXPECT_FALSE(a_->Usable(now_));
  EXPECT_NE(health_.usable_hint(), 0u);
  const ServiceHealthCounts counts = health_.counts(now_);
  EXPECT_EQ(counts.ejections, 1u);
  EXPECT_EQ(counts.ejected, 1u);
  EXPECT_EQ(counts.healthy, 3u);
  EXPECT_EQ(counts.endpoints, 4u);
}

TEST_F(ServiceHealthTest, TheEjectionTimeGrowsWithEachEjectionUpToTheMaximum) {
  // 10s, then 20s, then 25s (the cap), each measured from the ejecting failure.
  for (const auto length : {10s, 20s, 25s, 25s}) {
    Fail(*a_, 3);
    ASSERT_FALSE(a_->Usable(now_));
    EXPECT_FALSE(a_->Usable(now_ + length - 1ms)) << length.count();
    EXPECT_TRUE(a_->Usable(now_ + length)) << length.count();
    now_ += length;
    health_.Expire(now_);
    EXPECT_EQ(health_.usable_hint(), 0u);
    EXPECT_EQ(health_.counts(now_).ejected, 0u);
  }
  EXPECT_EQ(health_.counts(now_).ejections, 4u);
}

TEST_F(ServiceHealthTest, TheEndpointViewSaysWhyAnEndpointIsOut) {
  Fail(*a_, 3);
  health_.CheckResult("b", false, 1, 1);
  const std::vector<EndpointHealthView> views = health_.endpoints(now_ + 4s);
  ASSERT_EQ(views.size(), 4u);
  EXPECT_EQ(views[0].id, "a");
  EXPECT_EQ(views[0].ejected_for, std::chrono::steady_clock::duration(6s));
  EXPECT_EQ(views[0].times_ejected, 1u);
  EXPECT_FALSE(views[0].check_failed);
  EXPECT_EQ(views[1].ejected_for.count(), 0);
  EXPECT_TRUE(views[1].check_failed);
  EXPECT_FALSE(views[2].check_failed);
}

TEST_F(ServiceHealthTest, AQuietMaxEjectionForgetsEarlierEjections) {
  Fail(*a_, 3);
  now_ += 10s;
  Fail(*a_, 3);  // the second: 20s
  EXPECT_FALSE(a_->Usable(now_ + 19s));
  now_ += 20s + 25s;  // back, and quiet for max_ejection
  Fail(*a_, 3);
  EXPECT_FALSE(a_->Usable(now_ + 9s));
  EXPECT_TRUE(a_->Usable(now_ + 10s));  // the base time again
}

TEST_F(ServiceHealthTest, NeverEjectsMoreThanMaxEjectedOfTheEndpoints) {
  // 50% of 4 endpoints: two at most.
  Fail(*a_, 3);
  Fail(*b_, 3);
  Fail(*c_, 10);
  EXPECT_FALSE(a_->Usable(now_));
  EXPECT_FALSE(b_->Usable(now_));
  EXPECT_TRUE(c_->Usable(now_)) << "a third of four stays in, failing or not";
  EXPECT_EQ(health_.counts(now_).ejected, 2u);
  // Once a and b are back, c's next failure (its streak is long enough) ejects it.
  now_ += 10s;
  health_.Failed(*c_, now_);
  EXPECT_FALSE(c_->Usable(now_));
  EXPECT_TRUE(a_->Usable(now_));
  EXPECT_EQ(health_.counts(now_).ejected, 1u);
}

TEST_F(ServiceHealthTest, AServiceOfOneEndpointAtHalfNeverEjectsIt) {
  ServiceHealth one("one");
  one.SetOutlierDetection(config::OutlierDetectionPolicy{});
  one.SetEndpoints({"x"});
  auto x = one.Status("x");
  for (int i = 0; i < 20; ++i) one.Failed(*x, now_);
  EXPECT_TRUE(x->Usable(now_));
  EXPECT_EQ(one.counts(now_).ejections, 0u);
}

TEST_F(ServiceHealthTest, WithoutOutlierDetectionNothingIsEjected) {
  health_.SetOutlierDetection(std::nullopt);
  Fail(*a_, 50);
  EXPECT_TRUE(a_->Usable(now_));
}

TEST_F(ServiceHealthTest, HealthChecksMarkUnhealthyAndHealthyAfterTheirStreaks) {
  // unhealthy_after 2, healthy_after 3; healthy before any check.
  EXPECT_TRUE(a_->Usable(now_));
  health_.CheckResult("a", false, 2, 3);
  EXPECT_TRUE(a_->Usable(now_));
  health_.CheckResult("a", true, 2, 3);  // a pass ends the failure streak
  health_.CheckResult("a", false, 2, 3);
  EXPECT_TRUE(a_->Usable(now_));
  health_.CheckResult("a", false, 2, 3);
  EXPECT_FALSE(a_->Usable(now_));
  EXPECT_NE(health_.usable_hint(), 0u);
  health_.CheckResult("a", true, 2, 3);
  health_.CheckResult("a", true, 2, 3);
  EXPECT_FALSE(a_->Usable(now_));
  health_.CheckResult("a", true, 2, 3);
  EXPECT_TRUE(a_->Usable(now_));
  EXPECT_EQ(health_.usable_hint(), 0u);
  const ServiceHealthCounts counts = health_.counts(now_);
  EXPECT_EQ(counts.checks_passed, 4u);
  EXPECT_EQ(counts.checks_failed, 3u);
}

TEST_F(ServiceHealthTest, EveryEndpointCanFailItsHealthCheck) {
  for (const char* id : {"a", "b", "c", "d"}) health_.CheckResult(id, false, 1, 1);
  EXPECT_EQ(health_.counts(now_).healthy, 0u);
  health_.ClearChecks();
  EXPECT_EQ(health_.counts(now_).healthy, 4u);
}

TEST_F(ServiceHealthTest, ANewEndpointSetDropsTheStatusOfTheOnesGone) {
  health_.CheckResult("a", false, 1, 1);
  health_.SetEndpoints({"b", "c", "e"});
  EXPECT_EQ(health_.usable_hint(), 0u);  // a's verdict went with it
  EXPECT_EQ(health_.counts(now_).endpoints, 3u);
  // A status someone still holds no longer counts: failing it ejects nothing.
  Fail(*a_, 5);
  EXPECT_EQ(health_.counts(now_).ejections, 0u);
  health_.CheckResult("a", false, 1, 1);  // ignored
  EXPECT_EQ(health_.counts(now_).healthy, 3u);
}

TEST(HealthRegistry, KeepsOneHealthPerServiceUntilTheServiceGoes) {
  HealthRegistry registry;
  const auto first = registry.For("a");
  EXPECT_EQ(registry.For("a"), first);
  registry.For("b");
  registry.Retain({"a"});
  EXPECT_EQ(registry.For("a"), first);
  ASSERT_EQ(registry.All().size(), 1u);
}

}  // namespace
}  // namespace ferry::upstream
