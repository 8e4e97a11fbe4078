#include "observability/metric_family.hpp"

#include <cstdio>
#include <cstdlib>

namespace ferry::observability {

template <typename Series>
Family<Series>::Family(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names, std::mutex& mutex,
                       std::size_t slot_count, std::shared_ptr<const std::vector<double>> bounds)
    : FamilyBase(std::move(name), std::move(help), type, std::move(label_names)),
      mutex_(mutex),
      slot_count_(slot_count),
      bounds_(std::move(bounds)) {}

template <typename Series>
Series& Family<Series>::GetSeries(std::span<const std::string_view> label_values) {
  if (label_values.size() != label_names().size()) {
    std::fprintf(stderr, "ferry: metric %s takes %zu label values, got %zu\n", name().c_str(),
                 label_names().size(), label_values.size());
    std::abort();
  }
  std::vector<std::string> key(label_values.begin(), label_values.end());
  const std::lock_guard lock(mutex_);
  auto& slot = series_[std::move(key)];
  if (!slot) {
    if constexpr (std::is_same_v<Series, Histogram>) {
      slot = std::make_unique<Histogram>(slot_count_, bounds_);
    } else {
      slot = std::make_unique<Series>(slot_count_);
    }
  }
  return *slot;
}

template <typename Series>
void Family<Series>::Collect(MetricsSnapshot& out) const {
  FamilySnapshot& family = out.emplace_back();
  family.name = name();
  family.help = help();
  family.type = type();
  family.label_names = label_names();
  family.bounds = *bounds_;
  family.series.reserve(series_.size());
  for (const auto& [labels, series] : series_) {
    SeriesSnapshot& s = family.series.emplace_back();
    s.label_values = labels;
    if constexpr (std::is_same_v<Series, Histogram>) {
      HistogramValue v = series->Value();
      s.bucket_counts = std::move(v.bucket_counts);
      s.sum = v.sum;
      s.count = v.count;
    } else {
      s.value = static_cast<double>(series->Value());
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

void CallbackFamily::Collect(MetricsSnapshot& out) const {
  FamilySnapshot& family = out.emplace_back();
  family.name = name();
  family.help = help();
  family.type = type();
  family.series.emplace_back().value = callback_();
}

}  // namespace ferry::observability
