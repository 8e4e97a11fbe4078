#include "observability/metrics_registry.hpp"

#include <gtest/gtest.h>

namespace ferry::observability {
namespace {

TEST(MetricsRegistryTest, GetReturnsTheSameSeriesForTheSameLabelValues) {
  MetricsRegistry registry(2);
  CounterFamily* family = registry.AddCounter("requests_total", "Requests.", {"route"}).value();
  Counter& a = family->Get("a");
  EXPECT_EQ(&family->Get(std::string("a")), &a);
  EXPECT_NE(&family->Get("b"), &a);
}

TEST(MetricsRegistryTest, ReRegisteringTheSameShapeReturnsTheExistingFamily) {
  MetricsRegistry registry(2);
  auto first = registry.AddHistogram("latency_seconds", "Latency.", {"route"});
  auto second = registry.AddHistogram("latency_seconds", "Latency.", {"route"});
  ASSERT_TRUE(first && second);
  EXPECT_EQ(*first, *second);
}

TEST(MetricsRegistryTest, ReRegisteringWithADifferentShapeFails) {
  MetricsRegistry registry(2);
  ASSERT_TRUE(registry.AddCounter("x_total", "X.", {"a"}));
  auto other_labels = registry.AddCounter("x_total", "X.", {"b"});
  ASSERT_FALSE(other_labels);
  EXPECT_EQ(other_labels.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_FALSE(registry.AddGauge("x_total", "X.", {"a"}));
}

TEST(MetricsRegistryTest, RejectsInvalidNames) {
  MetricsRegistry registry(1);
  EXPECT_FALSE(registry.AddCounter("1bad", "h"));
  EXPECT_FALSE(registry.AddCounter("bad-name", "h"));
  EXPECT_FALSE(registry.AddCounter("ok_total", "h", {"bad:label"}));
  EXPECT_FALSE(registry.AddCounter("ok_total", "h", {"__reserved"}));
  EXPECT_FALSE(registry.AddCounter("ok_total", "h", {"a", "a"}));
  EXPECT_FALSE(registry.AddHistogram("h_seconds", "h", {"le"}));
}

TEST(MetricsRegistryTest, RejectsUnsortedHistogramBounds) {
  MetricsRegistry registry(1);
  auto result = registry.AddHistogram("h_seconds", "h", {}, {1.0, 0.5});
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
}

TEST(MetricsRegistryTest, DropsATrailingInfBound) {
  MetricsRegistry registry(1);
  auto family =
      registry.AddHistogram("h_seconds", "h", {}, {1.0, std::numeric_limits<double>::infinity()});
  ASSERT_TRUE(family);
  EXPECT_EQ((*family)->bounds(), std::vector<double>{1.0});
}

TEST(MetricsRegistryTest, CallbackGaugeIsEvaluatedAtCollectTime) {
  MetricsRegistry registry(1);
  double value = 1;
  ASSERT_TRUE(registry.AddCallbackGauge("uptime_seconds", "Up.", [&value] { return value; }));
  value = 42;
  const MetricsSnapshot snapshot = registry.Collect();
  ASSERT_EQ(snapshot.size(), 1u);
  ASSERT_EQ(snapshot[0].series.size(), 1u);
  EXPECT_EQ(snapshot[0].series[0].value, 42);
}

TEST(MetricsRegistryTest, MainSlotIsTheOneAfterTheWorkers) {
  MetricsRegistry registry(3);
  Counter& counter = registry.AddCounter("c_total", "c").value()->Get();
  counter.Add(registry.main_slot(), 2);
  counter.Add(0, 1);
  EXPECT_EQ(registry.main_slot(), 3u);
  EXPECT_EQ(counter.Value(), 3u);
}

TEST(MetricsRegistryDeathTest, GetWithTheWrongNumberOfLabelValuesAborts) {
  MetricsRegistry registry(1);
  CounterFamily* family = registry.AddCounter("c_total", "c", {"a", "b"}).value();
  EXPECT_DEATH(family->Get("only-one"), "takes 2 label values, got 1");
}

}  // namespace
}  // namespace ferry::observability
