#include "observability/stats_json.hpp"

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>
#include <cmath>
#include <cstdint>

namespace ferry::observability {
namespace {

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

// JSON has no NaN or infinities: they become null. Whole numbers become JSON integers, because
// Boost.JSON writes every double in exponent form (3.0 as 3E0), which is valid but hard to read.
boost::json::value Number(double v) {
  if (!std::isfinite(v)) return nullptr;
  constexpr double kExactIntegerLimit = 9007199254740992.0;  // 2^53
  if (std::trunc(v) == v && std::fabs(v) < kExactIntegerLimit) {
    return static_cast<std::int64_t>(v);
  }
  return v;
}

boost::json::object SeriesToJson(const FamilySnapshot& family, const SeriesSnapshot& series) {
  boost::json::object out;
  boost::json::object labels;
  for (std::size_t i = 0; i < family.label_names.size(); ++i) {
    labels[family.label_names[i]] = series.label_values[i];
  }
  out["labels"] = std::move(labels);
  if (family.type != MetricType::kHistogram) {
    out["value"] = Number(series.value);
    return out;
  }
  out["count"] = series.count;
  out["sum"] = Number(series.sum);
  boost::json::array buckets;
  std::uint64_t cumulative = 0;
  for (std::size_t b = 0; b < series.bucket_counts.size(); ++b) {
    cumulative += series.bucket_counts[b];
    boost::json::object bucket;
    if (b < family.bounds.size()) {
      bucket["le"] = Number(family.bounds[b]);
    } else {
      bucket["le"] = "+Inf";
    }
    bucket["count"] = cumulative;
    buckets.push_back(std::move(bucket));
  }
  out["buckets"] = std::move(buckets);
  return out;
}

}  // namespace

boost::json::object RenderJson(const MetricsSnapshot& snapshot) {
  boost::json::object out;
  for (const FamilySnapshot& family : snapshot) {
    boost::json::object f;
    f["type"] = TypeName(family.type);
    f["help"] = family.help;
    boost::json::array series;
    for (const SeriesSnapshot& s : family.series) series.push_back(SeriesToJson(family, s));
    f["series"] = std::move(series);
    out[family.name] = std::move(f);
  }
  return out;
}

}  // namespace ferry::observability
