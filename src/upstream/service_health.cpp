#include "upstream/service_health.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <set>

namespace ferry::upstream {
namespace {

using TimePoint = ServiceHealth::TimePoint;

std::int64_t Ticks(TimePoint t) { return t.time_since_epoch().count(); }

double Seconds(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

ServiceHealth::ServiceHealth(std::string service) : service_(std::move(service)) {}

void ServiceHealth::SetOutlierDetection(std::optional<config::OutlierDetectionPolicy> policy) {
  const std::lock_guard lock(mutex_);
  if (policy) policy_ = *policy;
  threshold_.store(policy ? std::max<std::uint32_t>(1, policy->consecutive_failures) : 0,
                   std::memory_order_relaxed);
}

void ServiceHealth::SetEndpoints(const std::vector<std::string>& ids) {
  const std::lock_guard lock(mutex_);
  const std::set<std::string> keep(ids.begin(), ids.end());
  std::erase_if(statuses_, [&](const auto& entry) { return !keep.contains(entry.first); });
  for (const std::string& id : keep) {
    if (!statuses_.contains(id)) statuses_.emplace(id, std::make_shared<EndpointStatus>(id));
  }
  endpoint_count_ = keep.size();
  endpoints_set_ = true;
  Recount();
}

std::shared_ptr<EndpointStatus> ServiceHealth::Status(const std::string& id) {
  const std::lock_guard lock(mutex_);
  auto& status = statuses_[id];
  if (!status) status = std::make_shared<EndpointStatus>(id);
  return status;
}

void ServiceHealth::Failed(EndpointStatus& status, TimePoint now) {
  // Requests that were in flight when it was ejected do not start its next streak.
  if (Ticks(now) < status.ejected_until.load(std::memory_order_relaxed)) return;
  const std::uint32_t streak =
      status.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::uint32_t threshold = threshold_.load(std::memory_order_relaxed);
  if (threshold == 0 || streak < threshold) return;

  const std::lock_guard lock(mutex_);
  ExpireLocked(now);
  // Ejected meanwhile by another thread, or no longer one of the service's endpoints.
  if (status.ejected || status.consecutive_failures.load(std::memory_order_relaxed) < threshold) {
    return;
  }
  const auto it = statuses_.find(status.id);
  if (it == statuses_.end() || it->second.get() != &status) return;
  const std::size_t endpoints = endpoints_set_ ? endpoint_count_ : statuses_.size();
  // A share of the endpoints, rounded down: of 3 endpoints at 50%, one may be out at a time.
  const auto allowed = static_cast<std::size_t>(
      std::floor(policy_.max_ejected * static_cast<double>(endpoints) + 1e-9));
  const auto ejected = static_cast<std::size_t>(std::count_if(
      statuses_.begin(), statuses_.end(), [](const auto& entry) { return entry.second->ejected; }));
  if (ejected + 1 > allowed) return;  // it stays (and is tried again at its next failure)

  // A quiet max_ejection since its last ejection ended forgets the earlier ones.
  if (status.times_ejected > 0 && now >= status.returned_at + policy_.max_ejection) {
    status.times_ejected = 0;
  }
  const auto base =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(policy_.base_ejection);
  const auto cap =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(policy_.max_ejection);
  const auto length = std::min(base * (status.times_ejected + 1), std::max(cap, base));
  ++status.times_ejected;
  status.ejected = true;
  status.returned_at = now + length;
  status.ejected_until.store(Ticks(now + length), std::memory_order_relaxed);
  status.consecutive_failures.store(0, std::memory_order_relaxed);
  ++ejections_;
  Recount();
  spdlog::warn(
      "upstream {}: endpoint {} ejected for {:.3g}s after {} failures in a row "
      "(ejection {})",
      service_, status.id, Seconds(length), streak, status.times_ejected);
}

void ServiceHealth::Expire(TimePoint now) {
  const std::lock_guard lock(mutex_);
  ExpireLocked(now);
}

void ServiceHealth::ExpireLocked(TimePoint now) {
  bool changed = false;
  for (auto& [id, status] : statuses_) {
    if (!status->ejected || Ticks(now) < status->ejected_until.load(std::memory_order_relaxed)) {
      continue;
    }
    status->ejected = false;
    changed = true;
    spdlog::info("upstream {}: endpoint {} is back after its ejection", service_, id);
  }
  if (changed) Recount();
}

void ServiceHealth::CheckResult(const std::string& id, bool passed, std::uint32_t unhealthy_after,
                                std::uint32_t healthy_after) {
  const std::lock_guard lock(mutex_);
  const auto it = statuses_.find(id);
  if (it == statuses_.end()) return;
  EndpointStatus& status = *it->second;
  const bool failing = status.check_failed.load(std::memory_order_relaxed);
  if (passed) {
    ++checks_passed_;
    ++status.check_passes;
    status.check_failures = 0;
    if (failing && status.check_passes >= std::max<std::uint32_t>(1, healthy_after)) {
      status.check_failed.store(false, std::memory_order_relaxed);
      Recount();
      spdlog::info("upstream {}: endpoint {} is healthy ({} health checks passed)", service_, id,
                   status.check_passes);
    }
  } else {
    ++checks_failed_;
    ++status.check_failures;
    status.check_passes = 0;
    if (!failing && status.check_failures >= std::max<std::uint32_t>(1, unhealthy_after)) {
      status.check_failed.store(true, std::memory_order_relaxed);
      Recount();
      spdlog::warn("upstream {}: endpoint {} is unhealthy ({} health checks failed)", service_, id,
                   status.check_failures);
    }
  }
}

void ServiceHealth::ClearChecks() {
  const std::lock_guard lock(mutex_);
  for (auto& [id, status] : statuses_) {
    status->check_failed.store(false, std::memory_order_relaxed);
    status->check_passes = 0;
    status->check_failures = 0;
  }
  Recount();
}

void ServiceHealth::Recount() {
  std::uint32_t unusable = 0;
  for (const auto& [id, status] : statuses_) {
    if (status->ejected || status->check_failed.load(std::memory_order_relaxed)) ++unusable;
  }
  unusable_.store(unusable, std::memory_order_relaxed);
}

ServiceHealthCounts ServiceHealth::counts(TimePoint now) const {
  const std::lock_guard lock(mutex_);
  ServiceHealthCounts c;
  c.ejections = ejections_;
  c.checks_passed = checks_passed_;
  c.checks_failed = checks_failed_;
  c.endpoints = static_cast<std::uint32_t>(statuses_.size());
  for (const auto& [id, status] : statuses_) {
    if (Ticks(now) < status->ejected_until.load(std::memory_order_relaxed)) ++c.ejected;
    if (status->Usable(now)) ++c.healthy;
  }
  return c;
}

std::vector<EndpointHealthView> ServiceHealth::endpoints(TimePoint now) const {
  const std::lock_guard lock(mutex_);
  std::vector<EndpointHealthView> views;
  for (const auto& [id, status] : statuses_) {
    EndpointHealthView view;
    view.id = id;
    const std::int64_t until = status->ejected_until.load(std::memory_order_relaxed);
    if (Ticks(now) < until)
      view.ejected_for = std::chrono::steady_clock::duration(until - Ticks(now));
    view.times_ejected = status->times_ejected;
    view.check_failed = status->check_failed.load(std::memory_order_relaxed);
    views.push_back(std::move(view));
  }
  return views;
}

std::shared_ptr<ServiceHealth> HealthRegistry::For(const std::string& service) {
  const std::lock_guard lock(mutex_);
  auto& health = services_[service];
  if (!health) health = std::make_shared<ServiceHealth>(service);
  return health;
}

std::shared_ptr<ServiceHealth> HealthRegistry::Find(const std::string& service) const {
  const std::lock_guard lock(mutex_);
  const auto it = services_.find(service);
  return it == services_.end() ? nullptr : it->second;
}

void HealthRegistry::Retain(const std::vector<std::string>& services) {
  const std::lock_guard lock(mutex_);
  const std::set<std::string> keep(services.begin(), services.end());
  std::erase_if(services_, [&](const auto& entry) { return !keep.contains(entry.first); });
}

std::vector<std::shared_ptr<ServiceHealth>> HealthRegistry::All() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::shared_ptr<ServiceHealth>> all;
  for (const auto& [name, health] : services_) all.push_back(health);
  return all;
}

}  // namespace ferry::upstream
