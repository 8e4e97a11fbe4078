#include "observability/metric_series.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace ferry::observability {
namespace {

TEST(CounterTest, SumsSlotsWrittenFromRealThreads) {
  constexpr std::size_t kWorkers = 4;
  constexpr std::uint64_t kAddsPerWorker = 100000;
  Counter counter(kWorkers + 1);
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < kWorkers; ++w) {
    threads.emplace_back([&counter, w] {
      for (std::uint64_t i = 0; i < kAddsPerWorker; ++i) counter.Add(w, 1);
    });
  }
  counter.Add(kWorkers, 7);  // the main thread's slot, concurrently with the workers
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter.Value(), kWorkers * kAddsPerWorker + 7);
}

TEST(GaugeTest, OpenAndCloseOnOneWorkerNetsOut) {
  Gauge gauge(3);
  gauge.Add(0, 1);
  gauge.Add(0, 1);
  gauge.Sub(0, 1);
  gauge.Add(1, 1);
  gauge.Sub(1, 1);
  EXPECT_EQ(gauge.Value(), 1);
}

TEST(GaugeTest, IncrementOnOneSlotAndDecrementOnAnotherSumsToZero) {
  Gauge gauge(3);
  gauge.Add(0, 5);
  gauge.Sub(2, 5);
  EXPECT_EQ(gauge.Value(), 0);
}

TEST(HistogramTest, PlacesValuesInFirstBucketWhoseBoundIsAtLeastTheValue) {
  Histogram histogram(2, std::make_shared<const std::vector<double>>(std::vector{0.1, 1.0}));
  histogram.Observe(0, 0.05);  // bucket le=0.1
  histogram.Observe(0, 0.1);   // le is inclusive: bucket le=0.1
  histogram.Observe(1, 0.5);   // bucket le=1
  histogram.Observe(1, 3.0);   // bucket +Inf
  const HistogramValue v = histogram.Value();
  EXPECT_EQ(v.bucket_counts, (std::vector<std::uint64_t>{2, 1, 1}));
  EXPECT_EQ(v.count, 4u);
  EXPECT_DOUBLE_EQ(v.sum, 3.65);
}

TEST(HistogramTest, IgnoresNaN) {
  Histogram histogram(1, std::make_shared<const std::vector<double>>(std::vector{1.0}));
  histogram.Observe(0, 0.5);
  histogram.Observe(0, std::numeric_limits<double>::quiet_NaN());
  const HistogramValue v = histogram.Value();
  EXPECT_EQ(v.count, 1u);
  EXPECT_DOUBLE_EQ(v.sum, 0.5);
}

TEST(HistogramTest, SlotsWithManyBucketsDoNotOverlap) {
  // 14 latency bounds + Inf + sum = 16 cells: two cache lines per slot.
  Histogram histogram(3, std::make_shared<const std::vector<double>>(LatencyBuckets()));
  for (std::size_t slot = 0; slot < 3; ++slot) histogram.Observe(slot, 100.0);
  const HistogramValue v = histogram.Value();
  EXPECT_EQ(v.bucket_counts.back(), 3u);
  EXPECT_EQ(v.count, 3u);
  EXPECT_DOUBLE_EQ(v.sum, 300.0);
}

}  // namespace
}  // namespace ferry::observability
