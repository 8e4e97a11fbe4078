// A metric family: a name, help text and label names, and the series created for each distinct
// set of label values. Thread safety: Get() creates series on demand under the registry mutex
// (it is meant for start-up and config reload, not the request path); the returned reference is
// stable for the life of the registry, and its hot-path methods follow metric_series.hpp.
// Ownership: families are created and owned by MetricsRegistry and never removed.
#pragma once

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "observability/metric_series.hpp"
#include "observability/metrics_snapshot.hpp"

namespace ferry::observability {

// What every family shares: identity, and how it copies itself into a snapshot.
class FamilyBase {
 public:
  FamilyBase(std::string name, std::string help, MetricType type,
             std::vector<std::string> label_names)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(label_names)) {}
  virtual ~FamilyBase() = default;
  FamilyBase(const FamilyBase&) = delete;
  FamilyBase& operator=(const FamilyBase&) = delete;

  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  MetricType type() const { return type_; }
  const std::vector<std::string>& label_names() const { return label_names_; }

  // Appends this family, merged across slots. Called with the registry mutex held.
  virtual void Collect(MetricsSnapshot& out) const = 0;

 private:
  std::string name_;
  std::string help_;
  MetricType type_;
  std::vector<std::string> label_names_;
};

// A family of Counter, Gauge or Histogram series.
template <typename Series>
class Family final : public FamilyBase {
 public:
  // Created by MetricsRegistry; `mutex` is the registry's, `bounds` is used by histograms only.
  Family(std::string name, std::string help, MetricType type, std::vector<std::string> label_names,
         std::mutex& mutex, std::size_t slot_count,
         std::shared_ptr<const std::vector<double>> bounds);

  // The series for these label values (one per label name, in order), created on first use.
  // A wrong number of values is a bug: it aborts with a message naming the family.
  template <typename... Values>
  Series& Get(const Values&... values) {
    const std::array<std::string_view, sizeof...(Values)> view{std::string_view(values)...};
    return GetSeries(view);
  }
  Series& GetSeries(std::span<const std::string_view> label_values);

  // Histogram families: the finite bucket bounds. Empty for other families.
  const std::vector<double>& bounds() const { return *bounds_; }

  void Collect(MetricsSnapshot& out) const override;

 private:
  std::mutex& mutex_;
  std::size_t slot_count_;
  std::shared_ptr<const std::vector<double>> bounds_;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> series_;  // sorted: stable output
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

// A single unlabelled value computed at scrape time (resident memory, uptime, queue depth owned
// by another component). The callback runs on the scraping thread with the registry mutex held:
// it must be thread-safe, quick, and must not call back into the registry.
class CallbackFamily final : public FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type,
                 std::function<double()> callback)
      : FamilyBase(std::move(name), std::move(help), type, {}), callback_(std::move(callback)) {}

  void Collect(MetricsSnapshot& out) const override;

 private:
  std::function<double()> callback_;
};

}  // namespace ferry::observability
