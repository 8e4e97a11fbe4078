// Push delivery: the bus POSTs each message to an HTTP endpoint of the subscriber's service
// (CloudEvents binary mode, the data untouched). A 2xx acks it; any other status, a connection
// failure or the timeout nacks it, so redelivery with backoff is the only retry — no HTTP-level
// retries or hedges stacked on top (a known pitfall of sidecars that retry underneath a broker).
// Connections are kept alive in a pool per push target and endpoint (upstream::ConnectionPool,
// bus thread only), and the endpoint is chosen by the service's load-balancing policy. Host
// names are resolved again every resolve_interval of the service, off the bus thread; pools of
// endpoints that stay are kept.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "bus/api/await_callback.hpp"
#include "bus/api/bus_service_impl.hpp"
#include "bus/api/cloudevents.hpp"
#include "core/units.hpp"
#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "http/serializer.hpp"
#include "runtime/deadline.hpp"
#include "upstream/load_balancer.hpp"
#include "upstream/resolver.hpp"

namespace ferry::bus {
namespace {

// A subscriber's response body is read (and dropped) only so the connection can be reused;
// beyond this the connection is closed instead.
constexpr std::uint64_t kMaxDrainedBody = 1024 * 1024;

struct PushEndpoint {
  PushEndpoint(asio::io_context& io, const PushAddress& a, const upstream::PoolSettings& s)
      : id(a.id), pool(io, tcp::endpoint(asio::ip::make_address(a.ip), a.port), s) {}
  std::string id;  // "ip:port"
  upstream::ConnectionPool pool;
  std::uint32_t in_flight = 0;  // deliveries on this endpoint now (for least_request)
};

}  // namespace

struct BusServiceImpl::PushTarget {
  Inbox inbox;
  config::BusPush push;
  config::Service service;  // a copy: endpoints, lb, hash_on, pool settings
  upstream::PoolSettings pool_settings;
  // Shared: a delivery in flight holds its endpoint, so a re-resolution may drop it meanwhile.
  std::vector<std::shared_ptr<PushEndpoint>> endpoints;
  std::vector<upstream::EndpointState> load;       // scratch for least_request picks
  std::unique_ptr<upstream::LoadBalancer> lb;      // null: unknown service or no lb
  std::uint32_t in_flight = 0;                     // deliveries being pushed
  bool receiving = false;  // a Receive is out: its deliveries count as in flight when they come
  std::unique_ptr<asio::steady_timer> slot_freed;  // cancelled when a push finishes
  // Re-resolution: only for a service with a host name; one round at a time.
  bool uses_dns = false;
  bool resolving = false;
  std::chrono::steady_clock::time_point next_resolve{};
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
    // The connect is part of the delivery attempt, so it never outlasts the push timeout.
    target->pool_settings = {target->service.max_connections_per_endpoint,
                             std::min<Duration>(target->service.connect_timeout, push.timeout),
                             target->service.pool_idle_timeout};
    target->uses_dns =
        std::any_of(target->service.endpoints.begin(), target->service.endpoints.end(),
                    [](const config::Address& a) { return !upstream::IsIpLiteral(a.host); });
    // At start the bus thread resolves itself (Start waits for it anyway); later rounds run on
    // resolve_pool_.
    target->next_resolve = std::chrono::steady_clock::now() + target->service.resolve_interval;
    ApplyPushResolution(*target, ResolveHosts(*resolver_, target->service.endpoints));
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

void BusServiceImpl::ApplyPushResolution(PushTarget& target, const ResolvedHosts& round) {
  const std::vector<PushAddress> addresses = CombineResolved(target.service.endpoints, round);
  const bool same = addresses.size() == target.endpoints.size() &&
                    std::equal(addresses.begin(), addresses.end(), target.endpoints.begin(),
                               [](const auto& a, const auto& e) { return a.id == e->id; });
  if (same && target.lb) return;
  target.endpoints = MergeEndpoints(target.endpoints, addresses, [&](const PushAddress& a) {
    return std::make_shared<PushEndpoint>(io_, a, target.pool_settings);
  });
  target.load.assign(target.endpoints.size(), {});
  std::vector<upstream::EndpointInfo> infos;
  std::string ids;
  for (const PushAddress& a : addresses) {
    infos.push_back({a.id});
    ids += (ids.empty() ? "" : ", ") + a.id;
  }
  // The hash ring depends only on endpoint ids, so the keys of surviving endpoints stay put.
  auto lb = upstream::LoadBalancer::Create(
      target.service.lb, infos,
      static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  if (lb) {
    target.lb = std::move(*lb);
  } else {
    target.lb.reset();
    spdlog::warn("bus push {}: {}", target.inbox.ToString(), lb.error().message());
  }
  spdlog::info("bus push {}: endpoints {}", target.inbox.ToString(), ids.empty() ? "none" : ids);
}

void BusServiceImpl::ResolvePushEndpoints() {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& target : push_targets_) {
    if (!target->uses_dns || target->resolving || now < target->next_resolve) continue;
    target->resolving = true;
    target->next_resolve = now + target->service.resolve_interval;
    asio::post(resolve_pool_, [this, weak = std::weak_ptr<PushTarget>(target),
                               endpoints = target->service.endpoints, resolver = resolver_] {
      ResolvedHosts round = ResolveHosts(*resolver, endpoints);
      asio::post(io_, [this, weak, round = std::move(round)] {
        const auto t = weak.lock();
        if (!t) return;
        t->resolving = false;
        if (!stopping_) ApplyPushResolution(*t, round);
      });
    });
  }
}

void BusServiceImpl::SweepPushConnections() {
  const auto now = std::chrono::steady_clock::now();
  for (const auto& target : push_targets_) {
    for (const auto& endpoint : target->endpoints) endpoint->pool.Sweep(now);
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
    const std::uint64_t seen = Notifications(key);
    const std::size_t wanted = target->push.concurrency - target->in_flight;
    const auto start = [this, &target, wanted](auto done) {
      broker_->Receive(target->inbox, wanted, std::move(done));
    };
    target->receiving = true;
    auto got = co_await AwaitCallback<Result<std::vector<Delivery>>>(start);
    target->receiving = false;
    // Stopped meanwhile (replaced, or turned off): what came is still pushed below, by this
    // target, as deliveries in flight; a push that replaced it waits for them.
    if (target->stopped) target->slot_freed->cancel();
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
    for (Delivery& d : *got) {
      metrics_.deliveries->Get(key, "push").Add(slot_);
      if (d.attempt == 1) {
        metrics_.end_to_end->Get(key).Observe(
            slot_, std::chrono::duration<double>(now - d.message.published_at).count());
      }
      ++target->in_flight;
      push_tasks_.Spawn(PushOne(target, std::move(d)));
    }
  }
}

namespace {

// The endpoint for one delivery by the service's policy; nullopt when none is available.
// lb: hash hashes the push request's header named by hash_on, or, for client_address (there is
// no client here), the message's partition key, so one key keeps going to one endpoint.
std::optional<std::size_t> PickPushEndpoint(const config::Service& service,
                                            upstream::LoadBalancer& lb,
                                            const std::vector<std::shared_ptr<PushEndpoint>>& eps,
                                            std::vector<upstream::EndpointState>& load,
                                            const Delivery& delivery,
                                            const http::Headers& headers) {
  upstream::PickContext pick;
  if (service.lb == config::LbPolicy::kLeastRequest) {
    for (std::size_t i = 0; i < eps.size(); ++i) load[i].in_flight = eps[i]->in_flight;
    pick.endpoints = load;
  } else if (service.lb == config::LbPolicy::kHash) {
    std::string_view key = delivery.message.key;
    if (service.hash_on.kind == config::HashOn::Kind::kHeader) {
      key = headers.Get(service.hash_on.header).value_or("");
    }
    pick.hash_key = upstream::HashKey(key);
  }
  return lb.Pick(pick);
}

}  // namespace

Task<void> BusServiceImpl::PushOne(std::shared_ptr<PushTarget> target, Delivery delivery) {
  const std::string key = target->inbox.ToString();
  const auto started = std::chrono::steady_clock::now();
  PushExchange result;
  http::Headers headers;
  AddBinaryModeHeaders(delivery, DefaultsFor(target->inbox), headers);
  headers.Add("content-length", std::to_string(delivery.message.data.size()));
  headers.Add("x-ferry-delivery-attempt", std::to_string(delivery.attempt));
  std::optional<std::size_t> index;
  if (target->lb) {
    index = PickPushEndpoint(target->service, *target->lb, target->endpoints, target->load,
                             delivery, headers);
  }
  if (index && *index < target->endpoints.size()) {
    // Held by this frame: a re-resolution during the push may drop it from the target.
    const std::shared_ptr<PushEndpoint> held = target->endpoints[*index];
    PushEndpoint& endpoint = *held;
    ++endpoint.in_flight;
    auto acquired = co_await endpoint.pool.Acquire();
    if (!acquired) {
      result.timed_out = acquired.error().code() == ErrorCode::kDeadlineExceeded;
      spdlog::debug("bus push {}: {}", key, acquired.error().message());
    } else {
      std::unique_ptr<upstream::UpstreamConnection> connection = std::move(*acquired);
      const tcp::endpoint& at = endpoint.pool.endpoint();
      headers.Add("host", at.address().to_string() + ":" + std::to_string(at.port()));
      std::string head;
      http::AppendRequestHead(head, "POST", target->push.path, headers);
      // What is left of the attempt's budget after the connect (at least a moment, so that an
      // exhausted budget ends as a timeout).
      const Duration budget =
          std::max<Duration>(target->push.timeout - (std::chrono::steady_clock::now() - started),
                             std::chrono::milliseconds(1));
      result = co_await PushExchangeOn(connection->socket, head, delivery.message.data, budget);
      // A connection that failed or was not fully read is closed; a failure on a reused one
      // (the subscriber closed it while it sat idle) is a failed delivery like any other, and
      // redelivery retries it: the message is not lost.
      if (result.reusable) {
        endpoint.pool.Release(std::move(connection));
      } else {
        endpoint.pool.Discard(std::move(connection));
      }
    }
    --endpoint.in_flight;
  }
  const bool delivered = result.status >= 200 && result.status < 300;
  metrics_.push_results->Get(key, delivered          ? "acked"
                                  : result.timed_out ? "timeout"
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

Task<PushExchange> BusServiceImpl::PushExchangeOn(tcp::socket& socket, const std::string& head,
                                                  const std::string& data, Duration budget) {
  PushExchange result;
  runtime::Deadline<tcp::socket> deadline(io_, socket);
  deadline.Arm(budget);
  std::array<asio::const_buffer, 2> out = {asio::buffer(head), asio::buffer(data)};
  auto [wec, written] = co_await asio::async_write(socket, out, kNoThrow);
  if (wec) {
    result.timed_out = deadline.expired();
    co_return result;
  }
  std::string in;
  char buf[4096];
  http::HeadScanner scanner({64 * 1024, 256});
  // Scan is incremental: keep the state it ended with rather than scanning again.
  http::HeadScanner::State state;
  while ((state = scanner.Scan(in)) == http::HeadScanner::State::kIncomplete) {
    auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
    if (rec) break;
    in.append(buf, n);
  }
  if (state != http::HeadScanner::State::kComplete) {
    result.timed_out = deadline.expired();
    co_return result;
  }
  http::Parser parser(http::Parser::Kind::kResponse);
  auto parsed = parser.Feed(std::string_view(in).substr(0, scanner.head_size()));
  if (!parsed || !parser.head_done()) co_return result;
  result.status = parser.response().status;
  in.erase(0, *parsed);
  // The status decides the delivery; the body is read only to keep the connection.
  bool clean = true;
  while (!parser.message_done()) {
    if (!in.empty()) {
      auto n = parser.Feed(in);
      if (!n) {
        clean = false;
        break;
      }
      parser.body_chunks().clear();
      in.erase(0, *n);
      if (parser.body_bytes() > kMaxDrainedBody) {
        clean = false;
        break;
      }
      continue;
    }
    auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
    if (rec) {
      // An until-close body ends here, complete, but the connection is gone either way.
      clean = false;
      break;
    }
    in.append(buf, n);
  }
  result.reusable = clean && parser.message_done() && parser.response().keep_alive && in.empty() &&
                    !deadline.expired();
  co_return result;
}

}  // namespace ferry::bus
