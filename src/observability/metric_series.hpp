// The three kinds of metric series: Counter, Gauge and Histogram, each with one slot per worker
// plus one for the main/admin thread. Thread safety: each slot has a single writer (worker i
// writes slot i; the main/admin thread writes the last slot), so updates are a relaxed load and
// a relaxed store, never a locked read-modify-write; any thread may read (sum) the slots at any
// time. Ownership: series are created and owned by their family and live as long as the
// MetricsRegistry. Errors: none; a slot index out of range is a bug (asserted in debug builds).
#pragma once

#include <atomic>
#include <bit>
#include <cassert>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ferry::observability {

// Slots are padded to this size so two workers never write the same cache line.
inline constexpr std::size_t kCacheLineSize = 64;

// A monotonically increasing count (requests, bytes, errors).
class Counter {
 public:
  explicit Counter(std::size_t slot_count);

  // Adds n to this slot. Only the thread that owns `slot` may call it.
  void Add(std::size_t slot, std::uint64_t n = 1) noexcept {
    assert(slot < slot_count_);
    auto& cell = slots_[slot].value;
    cell.store(cell.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }

  // The sum over all slots; may run concurrently with Add.
  std::uint64_t Value() const noexcept;

 private:
  struct alignas(kCacheLineSize) Slot {
    std::atomic<std::uint64_t> value{0};
  };
  std::size_t slot_count_;
  std::unique_ptr<Slot[]> slots_;
};

// A value that goes up and down (open connections, in-flight requests). Each slot holds a signed
// contribution and the value is their sum, so a connection opened and closed on one worker nets
// out, and one opened on worker 1 and counted down on worker 2 still sums correctly.
class Gauge {
 public:
  explicit Gauge(std::size_t slot_count);

  // Adds delta (may be negative) to this slot's contribution. Single writer per slot.
  void Add(std::size_t slot, std::int64_t delta) noexcept {
    assert(slot < slot_count_);
    auto& cell = slots_[slot].value;
    cell.store(cell.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  void Sub(std::size_t slot, std::int64_t delta) noexcept { Add(slot, -delta); }

  // Replaces this slot's contribution; meant for a gauge only one thread owns (use the main slot).
  void Set(std::size_t slot, std::int64_t value) noexcept {
    assert(slot < slot_count_);
    slots_[slot].value.store(value, std::memory_order_relaxed);
  }

  // The sum over all slots.
  std::int64_t Value() const noexcept;

 private:
  struct alignas(kCacheLineSize) Slot {
    std::atomic<std::int64_t> value{0};
  };
  std::size_t slot_count_;
  std::unique_ptr<Slot[]> slots_;
};

// The default latency buckets, in seconds: .0005 .001 .0025 .005 .01 .025 .05 .1 .25 .5 1 2.5 5
// 10 (and +Inf, which is implicit).
std::vector<double> LatencyBuckets();

// Merged view of a histogram: per-bucket (not cumulative) counts, the last one being +Inf.
struct HistogramValue {
  std::vector<std::uint64_t> bucket_counts;  // bounds().size() + 1 entries
  double sum = 0;                            // sum of all observed values
  std::uint64_t count = 0;                   // total observations (== sum of bucket_counts)
};

// A distribution over fixed buckets. Each slot holds its bucket counts and its sum, laid out in
// whole cache lines of its own. The count is the sum of the buckets, so _count and the +Inf
// bucket always agree even when read mid-update.
class Histogram {
 public:
  // bounds: finite upper bounds, strictly increasing (checked by the registry), +Inf implicit.
  Histogram(std::size_t slot_count, std::shared_ptr<const std::vector<double>> bounds);

  // Records one value. NaN is ignored (it would poison the sum forever). Single writer per slot.
  void Observe(std::size_t slot, double value) noexcept {
    assert(slot < slot_count_);
    if (std::isnan(value)) return;
    const std::size_t bucket = BucketIndex(value);
    auto& count = Cell(slot, kFirstBucketCell + bucket);
    count.store(count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    auto& sum = Cell(slot, kSumCell);
    const double new_sum = std::bit_cast<double>(sum.load(std::memory_order_relaxed)) + value;
    sum.store(std::bit_cast<std::uint64_t>(new_sum), std::memory_order_relaxed);
  }

  std::span<const double> bounds() const noexcept { return *bounds_; }

  // Merges all slots.
  HistogramValue Value() const;

 private:
  static constexpr std::size_t kCellsPerLine = kCacheLineSize / sizeof(std::uint64_t);
  static constexpr std::size_t kSumCell = 0;  // bit pattern of a double
  static constexpr std::size_t kFirstBucketCell = 1;
  struct alignas(kCacheLineSize) Line {
    std::atomic<std::uint64_t> cells[kCellsPerLine] = {};
  };

  // The first bucket whose upper bound is >= value (le is inclusive); bounds().size() is +Inf.
  std::size_t BucketIndex(double value) const noexcept {
    const auto& b = *bounds_;
    std::size_t i = 0;
    // Linear: bucket lists are short and latencies mostly land in the first few buckets.
    while (i < b.size() && value > b[i]) ++i;
    return i;
  }
  std::atomic<std::uint64_t>& Cell(std::size_t slot, std::size_t cell) const noexcept {
    return lines_[slot * lines_per_slot_ + cell / kCellsPerLine].cells[cell % kCellsPerLine];
  }

  std::size_t slot_count_;
  std::shared_ptr<const std::vector<double>> bounds_;
  std::size_t lines_per_slot_;
  std::unique_ptr<Line[]> lines_;
};

}  // namespace ferry::observability
