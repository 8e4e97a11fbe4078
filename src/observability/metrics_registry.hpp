// MetricsRegistry: the one per-process set of metric families, and the entry point for
// scraping them. Thread safety: Add*() and Family::Get() take the registry mutex and are meant
// for the main thread at start-up and on config reload; Collect()/Render*() take the same mutex
// and run on the admin thread; Counter::Add, Gauge::Add and Histogram::Observe take no lock and
// are called by worker i with slot i (main/admin thread: slot main_slot()). Ownership: the
// registry owns every family and series; pointers and references it hands out stay valid until
// it is destroyed (families are never removed). Errors: registration returns a Result.
#pragma once

#include <boost/json/object.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "observability/metric_family.hpp"
#include "observability/metric_series.hpp"
#include "observability/metrics_snapshot.hpp"

namespace ferry::observability {

class MetricsRegistry {
 public:
  // worker_count is fixed for the life of the process; series get worker_count + 1 slots.
  explicit MetricsRegistry(std::size_t worker_count);
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  std::size_t worker_count() const { return worker_count_; }
  // The slot the main and admin threads write (they must not write concurrently with each other).
  std::size_t main_slot() const { return worker_count_; }

  // Registers a family, or returns the existing one if a family of that name was registered
  // with the same type, help, label names (and bounds). Errors: kInvalidArgument for a bad
  // metric or label name, or bad bounds; kAlreadyExists for the name with a different shape.
  Result<CounterFamily*> AddCounter(std::string name, std::string help,
                                    std::vector<std::string> label_names = {});
  Result<GaugeFamily*> AddGauge(std::string name, std::string help,
                                std::vector<std::string> label_names = {});
  // bounds: finite, strictly increasing upper bounds; a trailing +Inf is accepted and dropped.
  Result<HistogramFamily*> AddHistogram(std::string name, std::string help,
                                        std::vector<std::string> label_names = {},
                                        std::vector<double> bounds = LatencyBuckets());
  // Unlabelled values computed at scrape time; see CallbackFamily for the callback's contract.
  Result<void> AddCallbackGauge(std::string name, std::string help,
                                std::function<double()> callback);
  Result<void> AddCallbackCounter(std::string name, std::string help,
                                  std::function<double()> callback);

  // Every family, merged across slots, in registration order.
  MetricsSnapshot Collect() const;
  // Prometheus text exposition format 0.0.4 (for GET /metrics).
  std::string RenderPrometheus() const;
  // The /stats document; see stats_json.hpp for its shape.
  boost::json::object RenderJson() const;

 private:
  // Returns the family registered under `name` (nullptr if none); the caller holds mutex_.
  FamilyBase* FindLocked(const std::string& name) const;
  Result<void> CheckNew(const std::string& name, const std::vector<std::string>& label_names,
                        MetricType type);
  template <typename Series>
  Result<Family<Series>*> AddFamily(std::string name, std::string help, MetricType type,
                                    std::vector<std::string> label_names,
                                    std::vector<double> bounds);
  Result<void> AddCallback(std::string name, std::string help, MetricType type,
                           std::function<double()> callback);

  std::size_t worker_count_;
  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<FamilyBase>> families_;
};

}  // namespace ferry::observability
