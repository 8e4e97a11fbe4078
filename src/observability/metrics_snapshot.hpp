// A point-in-time copy of every metric in a registry, merged across worker slots: what the
// renderers (Prometheus text, /stats JSON) work from. Plain values; no thread-safety concerns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry::observability {

enum class MetricType {
  kCounter,    // monotonically increasing
  kGauge,      // goes up and down
  kHistogram,  // bucketed distribution with sum and count
};

// One series of a family: its label values and its merged value.
struct SeriesSnapshot {
  std::vector<std::string> label_values;     // same order as FamilySnapshot::label_names
  double value = 0;                          // counters and gauges
  std::vector<std::uint64_t> bucket_counts;  // histograms: per bucket, not cumulative; last +Inf
  double sum = 0;                            // histograms: sum of observed values
  std::uint64_t count = 0;                   // histograms: number of observations
};

// One metric family: name, help, type, and all its series in label-value order.
struct FamilySnapshot {
  std::string name;  // e.g. ferry_http_requests_total
  std::string help;  // one-line description, unescaped
  MetricType type = MetricType::kCounter;
  std::vector<std::string> label_names;  // e.g. {"route", "code"}
  std::vector<double> bounds;            // histograms: finite upper bounds; +Inf implicit
  std::vector<SeriesSnapshot> series;
};

// Families in registration order.
using MetricsSnapshot = std::vector<FamilySnapshot>;

}  // namespace ferry::observability
