#include "upstream/health_checker.hpp"

#include <spdlog/spdlog.h>

#include <optional>
#include <set>

#include "upstream/cluster.hpp"
#include "upstream/grpc_health.hpp"

namespace ferry::upstream {

// One service's checks: a one-endpoint cluster per endpoint and a timer for the rounds.
struct HealthChecker::ServiceChecker {
  ServiceChecker(asio::io_context& context, runtime::TaskGroup& group)
      : tasks(group), timer(context) {}

  runtime::TaskGroup& tasks;  // the HealthChecker's: outlives every loop it runs (Stop ends them)
  Target target;
  std::map<std::string, std::shared_ptr<Cluster>> clusters;  // by endpoint id
  asio::steady_timer timer;
  bool stopped = false;
};

namespace {

using Checker = HealthChecker::ServiceChecker;

constexpr std::uint64_t kMaxBody = 64 * 1024;  // a larger body is not read: the connection closes

Task<void> CheckOne(std::shared_ptr<Checker> self, std::shared_ptr<Cluster> cluster, std::string id,
                    config::HealthCheck check, std::shared_ptr<ServiceHealth> health) {
  Request request;
  request.target = check.path;
  request.headers.Add("user-agent", "ferry-health-check");
  // grpc.health.v1: a POST of the Check call, whose answer's message decides.
  std::string grpc_message;
  std::optional<StringBody> grpc_body;
  if (check.grpc_service) {
    request.method = "POST";
    request.target = grpc_health::kCheckPath;
    request.headers.Add("content-type", "application/grpc");
    request.headers.Add("te", "trailers");
    grpc_message = grpc_health::CheckRequest(*check.grpc_service);
    grpc_body.emplace(grpc_message);
    request.body = &*grpc_body;
  }
  const auto deadline = std::chrono::steady_clock::now() + check.timeout;
  bool passed = false;
  auto response = co_await cluster->Send(request, deadline);
  if (response && check.grpc_service) {
    auto body = co_await response->body.ReadAll(kMaxBody);
    passed = body && grpc_health::Serving(response->status, response->headers,
                                          response->body.trailers(), *body);
  } else if (response) {
    passed = response->status >= 200 && response->status < 300;
    auto drained = co_await response->body.Drain(kMaxBody);
    (void)drained;  // the status decides; a body cut short only costs the connection
  } else {
    spdlog::debug("upstream {}: health check of {}: {}", self->target.service, id,
                  response.error().message());
  }
  if (!self->stopped) health->CheckResult(id, passed, check.unhealthy_after, check.healthy_after);
}

Task<void> RunChecks(std::shared_ptr<Checker> self) {
  while (!self->stopped) {
    for (const auto& [id, cluster] : self->clusters) {
      self->tasks.Spawn(CheckOne(self, cluster, id, self->target.check, self->target.health));
    }
    // (Apply cancels the wait when the health block changes: the next round starts at once.)
    self->timer.expires_after(self->target.check.interval);
    auto [ec] = co_await self->timer.async_wait(kNoThrow);
    (void)ec;
  }
}

}  // namespace

void HealthChecker::Apply(std::vector<Target> targets) {
  std::set<std::string> wanted;
  for (Target& target : targets) {
    wanted.insert(target.service);
    auto& checker = services_[target.service];
    const bool fresh = checker == nullptr;
    if (fresh) checker = std::make_shared<ServiceChecker>(io_, tasks_);
    const bool changed = !fresh && !(checker->target.check == target.check);
    if (!fresh && checker->target.health != target.health) checker->target.health->ClearChecks();

    std::set<std::string> ids;
    for (const ResolvedAddress& endpoint : target.endpoints) {
      ids.insert(endpoint.id);
      auto& cluster = checker->clusters[endpoint.id];
      ClusterOptions options;
      options.name = target.service;
      options.pool.max_connections = 2;
      options.pool.connect_timeout = target.check.timeout;
      options.pool.tls = target.tls;  // a check speaks to the endpoint as the proxy does
      options.protocol = target.protocol;
      if (!cluster) cluster = Cluster::Create(io_, options, nullptr, {});
      cluster->Update(std::move(options), {endpoint});
    }
    std::erase_if(checker->clusters, [&](const auto& entry) { return !ids.contains(entry.first); });
    checker->target = std::move(target);
    if (fresh) {
      spdlog::info(
          "upstream {}: health checks of {} every {}ms", checker->target.service,
          checker->target.check.grpc_service ? std::string(grpc_health::kCheckPath)
                                             : checker->target.check.path,
          std::chrono::duration_cast<std::chrono::milliseconds>(checker->target.check.interval)
              .count());
      tasks_.Spawn(RunChecks(checker));
    } else if (changed) {
      checker->timer.cancel();
    }
  }
  for (auto it = services_.begin(); it != services_.end();) {
    if (wanted.contains(it->first)) {
      ++it;
      continue;
    }
    it->second->stopped = true;
    it->second->timer.cancel();
    it->second->target.health->ClearChecks();
    spdlog::info("upstream {}: health checks stopped", it->first);
    it = services_.erase(it);
  }
}

void HealthChecker::Stop() {
  for (auto& [name, checker] : services_) checker->stopped = true;
  services_.clear();
  tasks_.CancelAll();  // the loops' waits and the checks in flight end now
}

}  // namespace ferry::upstream
