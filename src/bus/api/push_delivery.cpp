// Push delivery: the bus POSTs each message to an HTTP endpoint of the subscriber's service
// (CloudEvents binary mode, the data untouched). A 2xx acks it; any other status, a connection
// failure or the timeout nacks it, so redelivery with backoff is the only retry policy — no
// HTTP-level retries or hedges stacked on top (a known pitfall of sidecars that retry underneath
// a broker). The one exception is the upstream client's own: a keep-alive connection the
// subscriber closed as it was reused is replaced once by a fresh one (nothing was answered).
// Each push has its own upstream::Cluster for its service (bus thread only): the service's
// endpoints and load-balancing policy, keep-alive pools per endpoint, and host names resolved
// again every resolve_interval off the bus thread (on resolve_pool_), keeping the pools of
// endpoints that stay.
// The service's node-wide resilience state (resilience::ServiceState, shared with the proxy)
// applies to pushes as to requests, except retries and hedges: the circuit breaker is asked
// before a delivery is received, so while it is open nothing is received (no lease, no attempt
// spent: the messages wait) and the push resumes when it closes (half-open: the trial
// deliveries it admits); each push's result is recorded with the breaker; a push takes a slot of
// the service's concurrency limit (waiting within its timeout; refused: a failed delivery).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "bus/api/await_callback.hpp"
#include "bus/api/bus_service_impl.hpp"
#include "bus/api/cloudevents.hpp"
#include "core/units.hpp"
#include "resilience/outcome.hpp"
#include "resilience/service_state.hpp"
#include "tls/client_context.hpp"
#include "upstream/cluster.hpp"
#include "upstream/load_balancer.hpp"
#include "upstream/service_health.hpp"

namespace ferry::bus {
namespace {

// A subscriber's response body is read (and dropped) only so the connection can be reused;
// beyond this the connection is closed instead.
constexpr std::uint64_t kMaxDrainedBody = 1024 * 1024;

// How often a push paused by an open breaker looks again (a closing breaker tells nobody).
constexpr auto kBreakerPoll = std::chrono::milliseconds(100);

}  // namespace

struct BusServiceImpl::PushTarget {
  Inbox inbox;
  config::BusPush push;
  config::Service service;  // a copy: endpoints, lb, hash_on, pool settings
  // The service's upstream client; null when the service is unknown. A delivery in flight
  // holds the target, so the cluster (and the pools of its endpoints) outlive a stop.
  std::shared_ptr<upstream::Cluster> cluster;
  // The service's node-wide breaker and concurrency limit (null without a service registry:
  // tests of the bus alone).
  std::shared_ptr<resilience::ServiceState> guard;
  bool paused = false;          // the breaker is open: nothing is received (logged once per pause)
  std::uint32_t in_flight = 0;  // deliveries being pushed
  bool receiving = false;  // a Receive is out: its deliveries count as in flight when they come
  std::unique_ptr<asio::steady_timer> slot_freed;  // cancelled when a push finishes
  bool stopped = false;  // replaced or turned off: the loop ends, deliveries in flight finish
  // The push this one replaced, until its deliveries in flight are done (see PushLoop).
  std::shared_ptr<PushTarget> previous;
};

void BusServiceImpl::StartPush(const Inbox& inbox, const config::BusPush& push,
                               std::shared_ptr<PushTarget> previous) {
  auto target = std::make_shared<PushTarget>();
  target->inbox = inbox;
  target->push = push;
  target->previous = std::move(previous);
  const auto service = config_->services.find(push.service);
  if (service != config_->services.end()) {
    target->service = service->second;
    upstream::ClusterOptions options = upstream::ClusterOptions::FromService(
        target->service,
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
    options.name = fmt::format("{} (bus push {})", push.service, inbox.ToString());
    // The connect is part of the delivery attempt, so it never outlasts the push timeout.
    options.pool.connect_timeout = std::min<Duration>(options.pool.connect_timeout, push.timeout);
    if (health_ != nullptr) options.health = health_->Find(push.service);
    if (client_tls_ != nullptr) options.pool.tls = client_tls_->Find(push.service);
    target->cluster =
        upstream::Cluster::Create(io_, std::move(options), resolver_, resolve_pool_.get_executor());
    // At start the bus thread resolves itself (Start waits for it anyway); later rounds run on
    // resolve_pool_ (ResolvePushEndpoints).
    target->cluster->ResolveNow();
    if (services_ != nullptr) target->guard = services_->Get(push.service);
  }
  target->slot_freed = std::make_unique<asio::steady_timer>(io_);
  push_targets_.push_back(target);
  spdlog::info("bus push {}: to service {} path {} (timeout {}, concurrency {})", inbox.ToString(),
               push.service, push.path, FormatDuration(push.timeout), push.concurrency);
  push_tasks_.Spawn(PushLoop(target));
}

std::shared_ptr<BusServiceImpl::PushTarget> BusServiceImpl::StopPush(const std::string& inbox) {
  const auto it = std::find_if(push_targets_.begin(), push_targets_.end(),
                               [&](const auto& t) { return t->inbox.ToString() == inbox; });
  if (it == push_targets_.end()) return nullptr;
  std::shared_ptr<PushTarget> target = *it;
  push_targets_.erase(it);
  target->stopped = true;
  target->slot_freed->cancel();
  NotifyInbox(inbox);  // its loop may be waiting for messages
  spdlog::info("bus push {}: stopped ({} in flight finish)", inbox, target->in_flight);
  return target;
}

void BusServiceImpl::SetPush(const Inbox& inbox, const std::optional<PushOptions>& push) {
  const std::string key = inbox.ToString();
  std::optional<config::BusPush> wanted;
  if (push) {
    wanted =
        config::BusPush{push->service, push->path,
                        std::chrono::duration_cast<Duration>(push->timeout), push->concurrency};
  }
  const auto running = std::find_if(push_targets_.begin(), push_targets_.end(),
                                    [&](const auto& t) { return t->inbox.ToString() == key; });
  if (running == push_targets_.end() && !wanted) return;
  if (running != push_targets_.end() && wanted) {
    const config::BusPush& now = (*running)->push;
    const auto service = config_->services.find(wanted->service);
    if (now.service == wanted->service && now.path == wanted->path &&
        now.timeout == wanted->timeout && now.concurrency == wanted->concurrency &&
        service != config_->services.end() && service->second == (*running)->service) {
      return;  // unchanged: its connections and deliveries in flight go on
    }
  }
  std::shared_ptr<PushTarget> previous = StopPush(key);
  if (!wanted) return;
  if (!config_->services.contains(wanted->service)) {
    spdlog::warn(
        "bus push {}: service {} is not in the config; push is off until it is back or "
        "a PUT changes the push (the messages wait, and can be pulled)",
        key, wanted->service);
    return;
  }
  StartPush(inbox, *wanted, std::move(previous));
}

void BusServiceImpl::ResolvePushEndpoints() {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& target : push_targets_) {
    if (target->cluster) target->cluster->Refresh(now);
  }
}

void BusServiceImpl::SweepPushConnections() {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& target : push_targets_) {
    if (target->cluster) target->cluster->Sweep(now);
  }
}

Task<void> BusServiceImpl::PushLoop(std::shared_ptr<PushTarget> target) {
  const std::string key = target->inbox.ToString();
  // A push that replaced another starts once the deliveries of the ones before it are done
  // (each wakes the waiter through its slot_freed as one finishes).
  while (!stopping_ && !target->stopped && target->previous) {
    std::shared_ptr<PushTarget> busy;
    for (auto p = target->previous; p && !busy; p = p->previous) {
      if (p->in_flight > 0 || p->receiving) busy = p;
    }
    if (!busy) {
      target->previous.reset();
      break;
    }
    busy->slot_freed->expires_after(std::chrono::seconds(1));
    co_await busy->slot_freed->async_wait(kNoThrow);
  }
  while (!stopping_ && !target->stopped) {
    if (target->in_flight >= target->push.concurrency) {
      target->slot_freed->expires_after(std::chrono::seconds(1));
      co_await target->slot_freed->async_wait(kNoThrow);
      continue;
    }
    std::size_t wanted = target->push.concurrency - target->in_flight;
    // The breaker first: a delivery is received only with its admission in hand, so an open
    // breaker spends no lease and no attempt (half-open admits its trials only).
    std::vector<resilience::Admission> admissions;
    if (target->guard) {
      resilience::CircuitBreaker& breaker = target->guard->breaker;
      while (admissions.size() < wanted) {
        const resilience::Admission a = breaker.Allow();
        if (a == resilience::Admission::kRejected) break;
        admissions.push_back(a);
      }
      if (admissions.empty()) {
        if (!target->paused) {
          target->paused = true;
          spdlog::info("bus push {}: paused while the circuit breaker of service {} is open", key,
                       target->push.service);
        }
        target->slot_freed->expires_after(kBreakerPoll);
        co_await target->slot_freed->async_wait(kNoThrow);
        continue;
      }
      if (target->paused) {
        target->paused = false;
        spdlog::info("bus push {}: resumed", key);
      }
      wanted = admissions.size();
    }
    const std::uint64_t seen = Notifications(key);
    const auto start = [this, &target, wanted](auto done) {
      broker_->Receive(target->inbox, wanted, std::move(done));
    };
    target->receiving = true;
    auto got = co_await AwaitCallback<Result<std::vector<Delivery>>>(start);
    target->receiving = false;
    // Stopped meanwhile (replaced, or turned off): what came is still pushed below, by this
    // target, as deliveries in flight; a push that replaced it waits for them.
    if (target->stopped) target->slot_freed->cancel();
    // Admissions for deliveries that did not come are given back (a trial's slot).
    const std::size_t came = got ? got->size() : 0;
    if (target->guard) {
      for (std::size_t i = came; i < admissions.size(); ++i) {
        target->guard->breaker.Cancel(admissions[i]);
      }
    }
    if (!got) {
      if (got.error().code() == ErrorCode::kNotFound) {
        // Deleted (a DELETE stops the push before it deletes: a guard).
        spdlog::info("bus push {}: {}; push stops", key, got.error().message());
        break;
      }
      spdlog::warn("bus push {}: {}", key, got.error().message());
      co_await WaitReady(key, seen, std::chrono::steady_clock::now() + std::chrono::seconds(1));
      continue;
    }
    ArmTick();
    if (got->empty()) {
      co_await WaitReady(key, seen, std::chrono::steady_clock::now() + std::chrono::seconds(1));
      continue;
    }
    const auto now = std::chrono::system_clock::now();
    std::size_t next = 0;
    for (Delivery& d : *got) {
      const resilience::Admission admission =
          next < admissions.size() ? admissions[next++] : resilience::Admission::kAllowed;
      metrics_.deliveries->Get(key, "push").Add(slot_);
      if (d.attempt == 1) {
        metrics_.end_to_end->Get(key).Observe(
            slot_, std::chrono::duration<double>(now - d.message.published_at).count());
      }
      ++target->in_flight;
      push_tasks_.Spawn(PushOne(target, std::move(d), admission));
    }
  }
}

namespace {

// What the load balancer hashes for one delivery (lb: hash): the push request's header named by
// hash_on, or, for client_address (there is no client here), the message's partition key, so
// one key keeps going to one endpoint.
std::uint64_t PushHashKey(const config::Service& service, const Delivery& delivery,
                          const http::Headers& headers) {
  std::string_view key = delivery.message.key;
  if (service.hash_on.kind == config::HashOn::Kind::kHeader) {
    key = headers.Get(service.hash_on.header).value_or("");
  }
  return upstream::HashKey(key);
}

// A failure for the service's breaker, as for proxied requests: no connection, a reset, no
// answer within the push timeout (a push's only timeout: its try timeout), or a 5xx.
bool PushFailed(const Result<upstream::Response>& response, int status) {
  if (response) return resilience::IsFailure(resilience::Outcome::kResponse, status);
  const Result<void> tried = tl::unexpected(response.error());
  const bool timed_out = response.error().code() == ErrorCode::kDeadlineExceeded;
  return resilience::IsFailure(resilience::Classify(tried, timed_out), 0);
}

}  // namespace

Task<void> BusServiceImpl::PushOne(std::shared_ptr<PushTarget> target, Delivery delivery,
                                   resilience::Admission admission) {
  const std::string key = target->inbox.ToString();
  int status = 0;  // 0: no response
  bool timed_out = false;
  bool overloaded = false;
  const auto deadline = std::chrono::steady_clock::now() + target->push.timeout;
  resilience::ConcurrencyLimiter::Permit permit;
  if (target->guard) {
    auto slot = co_await target->guard->limiter.Acquire(deadline);
    if (slot) {
      permit = std::move(*slot);
    } else {
      overloaded = true;
      target->guard->breaker.Cancel(admission);
      spdlog::debug("bus push {}: {}", key, slot.error().message());
    }
  }
  if (target->cluster && !overloaded) {
    upstream::Request request;
    request.method = "POST";
    request.target = target->push.path;
    AddBinaryModeHeaders(delivery, DefaultsFor(target->inbox), request.headers);
    request.headers.Add("x-ferry-delivery-attempt", std::to_string(delivery.attempt));
    if (target->service.lb == config::LbPolicy::kHash) {
      request.hash_key = PushHashKey(target->service, delivery, request.headers);
    }
    upstream::StringBody body(delivery.message.data);
    request.body = &body;
    auto response = co_await target->cluster->Send(request, deadline);
    if (response) {
      status = response->status;
      // The status decides the delivery; the body is read only so the connection can be
      // reused (past kMaxDrainedBody, or on a failure, it is closed instead).
      auto drained = co_await response->body.Drain(kMaxDrainedBody);
      if (!drained) spdlog::debug("bus push {}: {}", key, drained.error().message());
    } else {
      // A failure on a reused connection (the subscriber closed it while it sat idle) that the
      // client could not retry is a failed delivery like any other, and redelivery retries
      // it: the message is not lost.
      timed_out = response.error().code() == ErrorCode::kDeadlineExceeded;
      spdlog::debug("bus push {}: {}", key, response.error().message());
    }
    if (target->guard) {
      target->guard->breaker.Record(admission, PushFailed(response, status));
    }
  }
  permit.Reset();
  const bool delivered = status >= 200 && status < 300;
  metrics_.push_results
      ->Get(key, delivered    ? "acked"
                 : timed_out  ? "timeout"
                 : overloaded ? "overloaded"
                              : "failed")
      .Add(slot_);
  std::vector<std::string> receipts{delivery.receipt};
  if (delivered) {
    broker_->Ack(target->inbox, std::move(receipts), [](auto) {});
  } else {
    broker_->Nack(target->inbox, std::move(receipts), std::nullopt, [](auto) {});
  }
  ArmTick();
  --target->in_flight;
  target->slot_freed->cancel();
}

}  // namespace ferry::bus
