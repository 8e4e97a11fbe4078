#include "observability/metric_series.hpp"

#include <utility>

namespace ferry::observability {

Counter::Counter(std::size_t slot_count)
    : slot_count_(slot_count), slots_(std::make_unique<Slot[]>(slot_count)) {}

std::uint64_t Counter::Value() const noexcept {
  std::uint64_t total = 0;
  for (std::size_t i = 0; i < slot_count_; ++i) {
    total += slots_[i].value.load(std::memory_order_relaxed);
  }
  return total;
}

Gauge::Gauge(std::size_t slot_count)
    : slot_count_(slot_count), slots_(std::make_unique<Slot[]>(slot_count)) {}

std::int64_t Gauge::Value() const noexcept {
  std::int64_t total = 0;
  for (std::size_t i = 0; i < slot_count_; ++i) {
    total += slots_[i].value.load(std::memory_order_relaxed);
  }
  return total;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Histogram::Histogram(std::size_t slot_count, std::shared_ptr<const std::vector<double>> bounds)
    : slot_count_(slot_count),
      bounds_(std::move(bounds)),
      lines_per_slot_((kFirstBucketCell + bounds_->size() + 1 + kCellsPerLine - 1) / kCellsPerLine),
      lines_(std::make_unique<Line[]>(slot_count_ * lines_per_slot_)) {}

HistogramValue Histogram::Value() const {
  HistogramValue out;
  const std::size_t buckets = bounds_->size() + 1;
  out.bucket_counts.assign(buckets, 0);
  for (std::size_t slot = 0; slot < slot_count_; ++slot) {
    for (std::size_t b = 0; b < buckets; ++b) {
      out.bucket_counts[b] += Cell(slot, kFirstBucketCell + b).load(std::memory_order_relaxed);
    }
    out.sum += std::bit_cast<double>(Cell(slot, kSumCell).load(std::memory_order_relaxed));
  }
  for (const auto c : out.bucket_counts) out.count += c;
  return out;
}

}  // namespace ferry::observability
