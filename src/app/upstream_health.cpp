#include "app/upstream_health.hpp"

#include <cstdio>
#include <cstdlib>

#include "tls/client_context.hpp"

namespace ferry::app {
namespace {

template <typename T>
T* Must(Result<T*> r) {
  if (!r) {
    std::fprintf(stderr, "metrics registration bug: %s\n", r.error().message().c_str());
    std::abort();
  }
  return *r;
}

// The service's policy's outlier detection (the built-in default policy's when the config has
// no such policy, as a config made by hand in tests may not).
std::optional<config::OutlierDetectionPolicy> OutlierDetectionOf(const config::Config& config,
                                                                 const config::Service& service) {
  if (auto it = config.policies.find(service.policy); it != config.policies.end()) {
    return it->second.outlier_detection;
  }
  if (auto it = config.policies.find("default"); it != config.policies.end()) {
    return it->second.outlier_detection;
  }
  return config::Policy{}.outlier_detection;
}

}  // namespace

UpstreamHealth::UpstreamHealth(asio::io_context& io, observability::MetricsRegistry& metrics)
    : io_(io),
      metrics_(metrics),
      ejections_(Must(metrics.AddCounter("ferry_upstream_ejections_total",
                                         "Endpoints ejected by outlier detection.", {"service"}))),
      ejected_(Must(metrics.AddGauge("ferry_upstream_endpoints_ejected",
                                     "Endpoints ejected by outlier detection now.", {"service"}))),
      checks_(Must(metrics.AddCounter("ferry_upstream_health_checks_total",
                                      "Active health checks, by result (pass, fail).",
                                      {"service", "result"}))),
      healthy_(Must(metrics.AddGauge("ferry_upstream_endpoints_healthy",
                                     "Endpoints load balancing may pick now (neither ejected nor "
                                     "failing their health check).",
                                     {"service"}))),
      checker_(io),
      timer_(io) {}

void UpstreamHealth::Apply(const config::Config& config, const proxy::Snapshot& snapshot) {
  std::vector<std::string> names;
  std::vector<upstream::HealthChecker::Target> targets;
  for (const auto& [name, plan] : snapshot.services) {
    names.push_back(name);
    const std::shared_ptr<upstream::ServiceHealth> health = registry_.For(name);
    health->SetOutlierDetection(OutlierDetectionOf(config, *plan.config));
    std::vector<std::string> ids;
    for (const auto& endpoint : plan.endpoints) ids.push_back(endpoint.id);
    health->SetEndpoints(ids);
    if (plan.config->health) {
      targets.push_back({name, *plan.config->health, plan.endpoints, health,
                         client_tls_ != nullptr ? client_tls_->Find(name) : nullptr,
                         plan.config->protocol});
    }
  }
  registry_.Retain(names);
  checked_.clear();
  for (const auto& target : targets) checked_.insert(target.service);
  if (!stopped_) checker_.Apply(std::move(targets));
}

boost::json::object UpstreamHealth::ToJson() const {
  const auto now = std::chrono::steady_clock::now();
  boost::json::object services;
  for (const std::shared_ptr<upstream::ServiceHealth>& health : registry_.All()) {
    boost::json::object endpoints;
    for (const upstream::EndpointHealthView& view : health->endpoints(now)) {
      boost::json::object e;
      e["usable"] = view.ejected_for.count() == 0 && !view.check_failed;
      e["ejected_for_ms"] =
          std::chrono::duration_cast<std::chrono::milliseconds>(view.ejected_for).count();
      e["times_ejected"] = view.times_ejected;
      if (checked_.contains(health->service()))
        e["health_check"] = view.check_failed ? "fail" : "pass";
      endpoints[view.id] = std::move(e);
    }
    services[health->service()] = std::move(endpoints);
  }
  return services;
}

void UpstreamHealth::Start() {
  timer_.expires_after(std::chrono::seconds(1));
  timer_.async_wait([this](const error_code& ec) {
    if (ec || stopped_) return;
    Tick();
    Start();
  });
}

void UpstreamHealth::Stop() {
  stopped_ = true;
  timer_.cancel();
  checker_.Stop();
}

void UpstreamHealth::Tick() {
  const std::size_t slot = metrics_.main_slot();
  const auto now = std::chrono::steady_clock::now();
  std::map<std::string, Published> next;
  for (const std::shared_ptr<upstream::ServiceHealth>& health : registry_.All()) {
    health->Expire(now);
    const upstream::ServiceHealthCounts counts = health->counts(now);
    Published before;
    if (auto it = published_.find(health->service());
        it != published_.end() && it->second.health == health) {
      before = it->second;
    }
    const std::string& name = health->service();
    ejections_->Get(name).Add(slot, counts.ejections - before.counts.ejections);
    checks_->Get(name, "pass").Add(slot, counts.checks_passed - before.counts.checks_passed);
    checks_->Get(name, "fail").Add(slot, counts.checks_failed - before.counts.checks_failed);
    ejected_->Get(name).Set(slot, counts.ejected);
    healthy_->Get(name).Set(slot, counts.healthy);
    next[name] = {health, counts};
  }
  for (const auto& [name, gone] : published_) {
    if (next.contains(name)) continue;
    ejected_->Get(name).Set(slot, 0);
    healthy_->Get(name).Set(slot, 0);
  }
  published_ = std::move(next);
}

}  // namespace ferry::app
