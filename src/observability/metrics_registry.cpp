#include "observability/metrics_registry.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "observability/prometheus_text.hpp"
#include "observability/stats_json.hpp"

namespace ferry::observability {
namespace {

bool IsNameStart(char c, bool allow_colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
}

bool IsNameChar(char c, bool allow_colon) {
  return IsNameStart(c, allow_colon) || (c >= '0' && c <= '9');
}

// Metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names: [a-zA-Z_][a-zA-Z0-9_]*.
bool IsValidName(const std::string& name, bool allow_colon) {
  if (name.empty() || !IsNameStart(name[0], allow_colon)) return false;
  return std::all_of(name.begin(), name.end(),
                     [allow_colon](char c) { return IsNameChar(c, allow_colon); });
}

Result<std::vector<double>> CheckBounds(std::vector<double> bounds) {
  if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return Fail(ErrorCode::kInvalidArgument, "histogram bounds must be finite");
    }
    if (i > 0 && !(bounds[i] > bounds[i - 1])) {
      return Fail(ErrorCode::kInvalidArgument, "histogram bounds must be strictly increasing");
    }
  }
  return bounds;
}

}  // namespace

MetricsRegistry::MetricsRegistry(std::size_t worker_count) : worker_count_(worker_count) {}

FamilyBase* MetricsRegistry::FindLocked(const std::string& name) const {
  for (const auto& family : families_) {
    if (family->name() == name) return family.get();
  }
  return nullptr;
}

Result<void> MetricsRegistry::CheckNew(const std::string& name,
                                       const std::vector<std::string>& label_names,
                                       MetricType type) {
  if (!IsValidName(name, /*allow_colon=*/true)) {
    return Fail(ErrorCode::kInvalidArgument, "invalid metric name '" + name + "'");
  }
  for (std::size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!IsValidName(label, /*allow_colon=*/false) || label.starts_with("__")) {
      return Fail(ErrorCode::kInvalidArgument,
                  "invalid label name '" + label + "' in metric '" + name + "'");
    }
    if (type == MetricType::kHistogram && label == "le") {
      return Fail(ErrorCode::kInvalidArgument, "histogram '" + name + "' may not use label 'le'");
    }
    if (std::find(label_names.begin(), label_names.begin() + static_cast<std::ptrdiff_t>(i),
                  label) != label_names.begin() + static_cast<std::ptrdiff_t>(i)) {
      return Fail(ErrorCode::kInvalidArgument,
                  "duplicate label name '" + label + "' in metric '" + name + "'");
    }
  }
  return Ok();
}

template <typename Series>
Result<Family<Series>*> MetricsRegistry::AddFamily(std::string name, std::string help,
                                                   MetricType type,
                                                   std::vector<std::string> label_names,
                                                   std::vector<double> bounds) {
  if (auto ok = CheckNew(name, label_names, type); !ok) return tl::unexpected(ok.error());
  const std::lock_guard lock(mutex_);
  if (FamilyBase* existing = FindLocked(name)) {
    auto* same = dynamic_cast<Family<Series>*>(existing);
    if (same != nullptr && same->type() == type && same->help() == help &&
        same->label_names() == label_names && same->bounds() == bounds) {
      return same;
    }
    return Fail(ErrorCode::kAlreadyExists,
                "metric '" + name + "' is already registered with a different shape");
  }
  auto family = std::make_unique<Family<Series>>(
      std::move(name), std::move(help), type, std::move(label_names), mutex_, worker_count_ + 1,
      std::make_shared<const std::vector<double>>(std::move(bounds)));
  Family<Series>* raw = family.get();
  families_.push_back(std::move(family));
  return raw;
}

Result<CounterFamily*> MetricsRegistry::AddCounter(std::string name, std::string help,
                                                   std::vector<std::string> label_names) {
  return AddFamily<Counter>(std::move(name), std::move(help), MetricType::kCounter,
                            std::move(label_names), {});
}

Result<GaugeFamily*> MetricsRegistry::AddGauge(std::string name, std::string help,
                                               std::vector<std::string> label_names) {
  return AddFamily<Gauge>(std::move(name), std::move(help), MetricType::kGauge,
                          std::move(label_names), {});
}

Result<HistogramFamily*> MetricsRegistry::AddHistogram(std::string name, std::string help,
                                                       std::vector<std::string> label_names,
                                                       std::vector<double> bounds) {
  auto checked = CheckBounds(std::move(bounds));
  if (!checked) return tl::unexpected(checked.error());
  return AddFamily<Histogram>(std::move(name), std::move(help), MetricType::kHistogram,
                              std::move(label_names), std::move(*checked));
}

Result<void> MetricsRegistry::AddCallback(std::string name, std::string help, MetricType type,
                                          std::function<double()> callback) {
  if (auto ok = CheckNew(name, {}, type); !ok) return ok;
  if (!callback) return Fail(ErrorCode::kInvalidArgument, "metric '" + name + "' has no callback");
  const std::lock_guard lock(mutex_);
  if (FindLocked(name) != nullptr) {
    // A callback cannot be compared, so registering one twice is always an error.
    return Fail(ErrorCode::kAlreadyExists, "metric '" + name + "' is already registered");
  }
  families_.push_back(std::make_unique<CallbackFamily>(std::move(name), std::move(help), type,
                                                       std::move(callback)));
  return Ok();
}

Result<void> MetricsRegistry::AddCallbackGauge(std::string name, std::string help,
                                               std::function<double()> callback) {
  return AddCallback(std::move(name), std::move(help), MetricType::kGauge, std::move(callback));
}

Result<void> MetricsRegistry::AddCallbackCounter(std::string name, std::string help,
                                                 std::function<double()> callback) {
  return AddCallback(std::move(name), std::move(help), MetricType::kCounter, std::move(callback));
}

MetricsSnapshot MetricsRegistry::Collect() const {
  MetricsSnapshot out;
  const std::lock_guard lock(mutex_);
  out.reserve(families_.size());
  for (const auto& family : families_) family->Collect(out);
  return out;
}

std::string MetricsRegistry::RenderPrometheus() const {
  return ferry::observability::RenderPrometheus(Collect());
}

boost::json::object MetricsRegistry::RenderJson() const {
  return ferry::observability::RenderJson(Collect());
}

}  // namespace ferry::observability
