#include "upstream/cluster.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "http/headers.hpp"
#include "runtime/buffer_pool.hpp"
#include "upstream/http1_exchange.hpp"
#include "upstream/http2_connection.hpp"
#include "upstream/http2_exchange.hpp"

namespace ferry::upstream {

using Clock = std::chrono::steady_clock;

ClusterOptions ClusterOptions::FromService(const config::Service& service, std::uint64_t seed) {
  ClusterOptions o;
  o.name = service.name;
  o.addresses = service.endpoints;
  o.lb = service.lb;
  o.pool = {service.max_connections_per_endpoint, service.connect_timeout,
            service.pool_idle_timeout};
  o.resolve_interval = service.resolve_interval;
  o.seed = seed;
  o.protocol = service.protocol;
  o.http2_max_streams = service.http2.max_streams_per_connection;
  o.http2_keepalive_interval = service.http2.keepalive_interval;
  return o;
}

std::shared_ptr<Cluster> Cluster::Create(asio::io_context& io, ClusterOptions options,
                                         std::shared_ptr<Resolver> resolver,
                                         asio::any_io_executor resolve_on) {
  return std::shared_ptr<Cluster>(
      new Cluster(io, std::move(options), std::move(resolver), std::move(resolve_on)));
}

Cluster::Cluster(asio::io_context& io, ClusterOptions options, std::shared_ptr<Resolver> resolver,
                 asio::any_io_executor resolve_on)
    : io_(io),
      options_(std::move(options)),
      resolver_(std::move(resolver)),
      resolve_on_(std::move(resolve_on)),
      buffers_(std::make_shared<runtime::BufferPool>(16)),
      clock_(options_.clock != nullptr ? options_.clock : &SystemClock()),
      uses_dns_(NeedsResolution(options_.addresses)),
      tasks_(io.get_executor()) {
  options_.pool.multiplexed = options_.protocol != config::UpstreamProtocol::kHttp1;
}

Cluster::~Cluster() = default;

void Cluster::ResolveNow() {
  if (fed_ || !resolver_) return;
  Apply(ResolveHosts(*resolver_, options_.addresses));
  next_resolve_ = Clock::now() + options_.resolve_interval;
}

void Cluster::Refresh(TimePoint now) {
  if (fed_) return;
  if (!uses_dns_) {
    if (!resolved_once_) ResolveNow();  // literals only: nothing blocks
    return;
  }
  if (resolving_ || (resolved_once_ && now < next_resolve_)) return;
  resolving_ = true;
  next_resolve_ = now + options_.resolve_interval;
  asio::post(resolve_on_, [weak = weak_from_this(), resolver = resolver_,
                           addresses = options_.addresses, &io = io_] {
    ResolvedHosts round = ResolveHosts(*resolver, addresses);
    asio::post(io, [weak, round = std::move(round)] {
      const std::shared_ptr<Cluster> cluster = weak.lock();
      if (!cluster) return;
      cluster->resolving_ = false;
      cluster->Apply(round);
    });
  });
}

void Cluster::Apply(const ResolvedHosts& round) {
  ++stats_.resolutions;
  const bool first = !resolved_once_;
  resolved_once_ = true;
  const std::vector<ResolvedAddress> addresses = CombineResolved(options_.addresses, round);
  const bool same = !first && lb_ && addresses.size() == endpoints_.size() &&
                    std::equal(addresses.begin(), addresses.end(), endpoints_.begin(),
                               [](const auto& a, const auto& e) { return a.id == e->id; });
  if (same) return;
  SetEndpoints(addresses);
  std::string ids;
  for (const ResolvedAddress& a : addresses) ids += (ids.empty() ? "" : ", ") + a.id;
  spdlog::info("upstream {}: endpoints {}", options_.name, ids.empty() ? "none" : ids);
}

void Cluster::Update(ClusterOptions options, const std::vector<ResolvedAddress>& endpoints) {
  fed_ = true;
  resolved_once_ = true;
  const ferry::Clock* clock = options.clock != nullptr ? options.clock : &SystemClock();
  options_ = std::move(options);
  options_.pool.multiplexed = options_.protocol != config::UpstreamProtocol::kHttp1;
  clock_ = clock;
  for (const auto& endpoint : endpoints_) endpoint->pool->set_settings(options_.pool);
  SetEndpoints(endpoints);
}

void Cluster::SetEndpoints(const std::vector<ResolvedAddress>& addresses) {
  endpoints_ = MergeEndpoints(endpoints_, addresses, [&](const ResolvedAddress& a) {
    return std::make_shared<Endpoint>(a,
                                      StreamPool::Create(io_, a.ip, a.port, options_.pool, a.host));
  });
  for (const auto& endpoint : endpoints_) {
    endpoint->status = options_.health ? options_.health->Status(endpoint->id) : nullptr;
  }
  load_.assign(endpoints_.size(), {});
  std::vector<EndpointInfo> infos;
  infos.reserve(addresses.size());
  for (const ResolvedAddress& a : addresses) infos.push_back({a.id});
  // The hash ring depends only on endpoint ids, so the keys of surviving endpoints stay put.
  auto lb = LoadBalancer::Create(options_.lb, infos, options_.seed);
  if (lb) {
    lb_ = std::move(*lb);
  } else {
    lb_.reset();
    spdlog::warn("upstream {}: {}", options_.name, lb.error().message());
  }
}

void Cluster::Sweep(TimePoint now) {
  for (const auto& endpoint : endpoints_) endpoint->pool->Sweep(now);
}

std::shared_ptr<Endpoint> Cluster::Pick(const Request& request) {
  if (!lb_ || endpoints_.empty()) return nullptr;
  PickContext pick;
  const bool least_request = options_.lb == config::LbPolicy::kLeastRequest;
  if (options_.lb == config::LbPolicy::kHash) pick.hash_key = request.hash_key;
  // The state Pick reads, filled only when something in it matters (the common case passes
  // none: all healthy, none busy).
  std::size_t avoided = endpoints_.size();
  if (request.avoid != nullptr) {
    for (std::size_t i = 0; i < endpoints_.size(); ++i) {
      if (endpoints_[i].get() == request.avoid) avoided = i;
    }
  }
  const bool avoiding = avoided < endpoints_.size() && endpoints_.size() > 1;
  // Ejected and unhealthy endpoints are skipped (looked at one by one only while the service
  // has some).
  const bool screened = options_.health && options_.health->usable_hint() != 0;
  if (least_request || avoiding || screened) {
    const TimePoint now = screened ? clock_->now() : TimePoint{};
    for (std::size_t i = 0; i < endpoints_.size(); ++i) {
      load_[i].in_flight = endpoints_[i]->health.in_flight;
      load_[i].healthy =
          !screened || endpoints_[i]->status == nullptr || endpoints_[i]->status->Usable(now);
    }
    pick.endpoints = load_;
  }
  std::optional<std::size_t> index;
  if (avoiding && load_[avoided].healthy && options_.lb == config::LbPolicy::kRoundRobin) {
    // The next usable one after the avoided one, leaving the round robin's turn alone: a
    // retry that took a turn would line the next request up on the endpoint just avoided (with
    // two endpoints and one failing, every first try would land on the failing one).
    for (std::size_t step = 1; step < endpoints_.size() && !index; ++step) {
      const std::size_t i = (avoided + step) % endpoints_.size();
      if (load_[i].healthy) index = i;
    }
  } else if (avoiding && load_[avoided].healthy) {
    load_[avoided].healthy = false;
    index = lb_->Pick(pick);
    load_[avoided].healthy = true;
  }
  if (!index) index = lb_->Pick(pick);  // nothing else usable: the avoided one will do
  if (!index || *index >= endpoints_.size()) return nullptr;
  return endpoints_[*index];
}

bool Cluster::SpeaksHttp2(const StreamPool::Lease& lease) const {
  switch (options_.protocol) {
    case config::UpstreamProtocol::kHttp1:
      return false;
    case config::UpstreamProtocol::kHttp2:
      return true;
    case config::UpstreamProtocol::kAuto:
      return lease.alpn() == "h2";
  }
  return false;
}

void Cluster::Report(Endpoint& endpoint, bool failed) {
  if (!options_.health || !endpoint.status) return;
  if (failed) {
    options_.health->Failed(*endpoint.status, clock_->now());
  } else {
    options_.health->Succeeded(*endpoint.status);
  }
}

Task<Result<Response>> Cluster::Send(Request& request, TimePoint deadline) {
  Response response;
  const Result<void> sent = co_await Send(request, deadline, response);
  if (!sent) co_return tl::unexpected(sent.error());
  co_return response;
}

Task<Result<void>> Cluster::Send(Request& request, TimePoint deadline, Response& response) {
  const std::shared_ptr<Cluster> self = shared_from_this();  // held across the suspensions
  const std::shared_ptr<Endpoint> endpoint = Pick(request);
  request.endpoint = endpoint;
  request.keepalive_retries = 0;
  if (!endpoint) {
    ++stats_.failed;
    co_return Fail(ErrorCode::kUnavailable,
                   fmt::format("no healthy endpoint for service {}", options_.name));
  }
  InFlight in_flight(endpoint);
  // Send frames the body itself. (One look at the fields first: most requests have no
  // framing field to remove, and the scan is cheaper than two removals.)
  bool framed = false;
  bool has_host = false;
  bool has_te = false;  // `te: trailers` (from an HTTP/2 client): only for HTTP/2 upstreams
  http::Headers& headers = request.sent_headers();
  headers.ForEach([&](const http::Headers::Field& field) {
    const std::size_t size = field.name.size();
    if ((size == 14 && http::EqualsIgnoreCase(field.name, "content-length")) ||
        (size == 17 && http::EqualsIgnoreCase(field.name, "transfer-encoding"))) {
      framed = true;
    } else if (size == 4 && http::EqualsIgnoreCase(field.name, "host")) {
      has_host = true;
    } else if (size == 2 && http::EqualsIgnoreCase(field.name, "te")) {
      has_te = true;
    }
  });
  if (framed) {
    headers.Remove("content-length");
    headers.Remove("transfer-encoding");
  }
  if (request.body != nullptr) {
    if (const auto length = request.body->length()) {
      headers.Add("content-length", std::to_string(*length));
    } else {
      headers.Add("transfer-encoding", "chunked");
    }
  }
  if (!has_host) headers.Add("host", endpoint->id);

  for (int attempt = 0;; ++attempt) {
    const TimePoint now = clock_->now();
    if (now >= deadline) {
      ++stats_.failed;
      co_return Fail(ErrorCode::kDeadlineExceeded,
                     fmt::format("upstream {}: deadline passed before connecting", endpoint->id));
    }
    // A warm connection at once (no frame); else a new one.
    StreamPool::Lease lease;
    // Without a body the request can always go again: the pool skips its liveness check on a
    // connection just used (the keep-alive race retry below covers a close it would catch).
    if (attempt == 0) {
      lease =
          endpoint->pool->TryAcquire(/*replayable=*/request.body == nullptr && request.may_resend);
    }
    const bool connected = !lease;
    if (!lease) {
      const Duration left = std::chrono::duration_cast<Duration>(deadline - now);
      auto made = co_await endpoint->pool->Acquire(/*fresh_only=*/attempt > 0, left, request.watch);
      if (made && request.watch != nullptr && request.watch->aborted()) {
        ++stats_.failed;  // (the fresh connection goes with the lease, unused)
        co_return Fail(ErrorCode::kCancelled,
                       fmt::format("upstream {}: the try was aborted", endpoint->id));
      }
      if (!made) {
        ++stats_.failed;
        if (made.error().code() != ErrorCode::kConnectFailed &&
            made.error().code() != ErrorCode::kTlsFailed) {
          co_return tl::unexpected(made.error());
        }
        endpoint->health.Failed(Clock::now());
        Report(*endpoint, /*failed=*/true);
        // The request's own deadline cut the connect short: that is the deadline's error.
        if (clock_->now() >= deadline) {
          co_return Fail(ErrorCode::kDeadlineExceeded, made.error().message());
        }
        co_return tl::unexpected(made.error());
      }
      lease = std::move(*made);
    }
    std::unique_ptr<ProtocolExchange> exchange;
    if (!SpeaksHttp2(lease)) {
      // TE is hop-by-hop in HTTP/1.1 (it would need a Connection: TE of its own).
      if (has_te) headers.Remove("te");
      exchange = std::make_unique<Http1Exchange>(io_, std::move(lease), buffers_);
    } else {
      // A fresh connection starts its HTTP/2 session (preface, SETTINGS) and is shared at
      // once (the Sends waiting for it open their streams: nghttp2 holds any beyond the
      // server's limit); this one waits for the server's SETTINGS, within the connect
      // timeout, so a server that speaks no HTTP/2 fails like a connect.
      std::shared_ptr<Http2Connection> connection;
      if (lease.session() == nullptr) {
        Http2Options h2{.max_streams = options_.http2_max_streams,
                        .keepalive_interval = options_.http2_keepalive_interval,
                        .tls = options_.pool.tls != nullptr};
        auto started = Http2Connection::Start(io_, lease, h2, tasks_);
        if (!started) {
          ++stats_.failed;
          co_return tl::unexpected(started.error());
        }
        connection = std::move(*started);
        lease.Share(connection);
        const Duration left = std::chrono::duration_cast<Duration>(deadline - clock_->now());
        const auto settings_by =
            Clock::now() + std::min(options_.pool.connect_timeout, std::max(left, Duration{}));
        auto shook = co_await connection->Handshake(settings_by);
        if (!shook) {
          ++stats_.failed;
          endpoint->health.Failed(Clock::now());
          Report(*endpoint, /*failed=*/true);
          co_return tl::unexpected(shook.error());
        }
      } else {
        connection = static_cast<Http2Connection*>(lease.session())->shared_from_this();
      }
      exchange = std::make_unique<Http2Exchange>(io_, std::move(lease), std::move(connection));
      ++stats_.http2_streams;
    }
    // (A connect took time: read the clock again after one.)
    const TimePoint armed_at = connected ? clock_->now() : now;
    const TimePoint head_deadline = std::min(deadline, request.head_deadline);
    if (!exchange->Arm(head_deadline, armed_at)) {
      ++stats_.failed;
      co_return Fail(
          ErrorCode::kDeadlineExceeded,
          fmt::format("upstream {}: deadline passed before the request was sent", endpoint->id));
    }
    if (request.watch != nullptr) exchange->Watch(request.watch);
    Result<void> got = co_await exchange->Run(request, response);
    if (request.watch != nullptr) {
      exchange->Watch(nullptr);  // (the exchange lives on as the body's reader)
      if (request.watch->aborted()) {
        // Whatever the try got, it lost: the caller has another answer. (Its connection goes
        // with the exchange; the endpoint is not blamed.)
        ++stats_.failed;
        co_return Fail(ErrorCode::kCancelled,
                       fmt::format("upstream {}: the try was aborted", endpoint->id));
      }
    }
    if (got && head_deadline != deadline && !exchange->Arm(deadline, clock_->now())) {
      ++stats_.failed;  // (the try timeout is over: the body has the whole deadline)
      co_return Fail(
          ErrorCode::kDeadlineExceeded,
          fmt::format("upstream {}: deadline passed with the response head", endpoint->id));
    }
    if (got) {
      // The body reader takes the connection and the request in flight: the body's end gives
      // them back (and counts the endpoint's success).
      exchange->TakeInFlight(std::move(in_flight));
      exchange->FinishIfEmpty();
      response.body = BodyReader(std::move(exchange));
      response.endpoint = endpoint;
      ++stats_.sent;
      Report(*endpoint, /*failed=*/response.status >= 500);
      co_return Ok();
    }
    if (exchange->may_retry() && attempt == 0 && (request.may_resend || exchange->unprocessed()) &&
        (request.body == nullptr || request.body->Rewind())) {
      // The keep-alive race (the upstream closed the idle connection as it was taken), or an
      // HTTP/2 stream the server refused unprocessed (REFUSED_STREAM, GOAWAY).
      ++stats_.keepalive_retries;
      ++request.keepalive_retries;
      spdlog::debug("upstream {}: {}; sending again on a new connection", endpoint->id,
                    got.error().message());
      continue;
    }
    // A reset, a bad response or the deadline (a try timeout) counts against the endpoint; the
    // caller cancelling (its client left) does not.
    if (got.error().code() != ErrorCode::kCancelled) {
      endpoint->health.Failed(Clock::now());
      Report(*endpoint, /*failed=*/true);
    }
    ++stats_.failed;
    co_return tl::unexpected(got.error());
  }
}

}  // namespace ferry::upstream
