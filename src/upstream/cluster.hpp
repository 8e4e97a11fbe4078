// The upstream client: one Cluster per service per event loop. It keeps the service's endpoints
// (static addresses, and host names re-resolved OFF the event loop: the blocking resolver runs on
// `resolve_on`, a thread pool, and the answer is posted back), picks one per request with the
// service's load balancer, keeps a keep-alive pool and health counters per endpoint, and makes
// the one call everything upstream goes through:
//
//   Task<Result<Response>> Send(Request&, deadline)
//
// Send picks an endpoint, leases a connection (reused or new), writes the request (its body
// streamed from a BodySource), reads the response head and returns; the response's body reader
// streams the body and gives the connection back when it has been read to its end. When a
// reused connection fails before any response byte (the upstream closed it while it sat idle:
// the keep-alive race) the request is sent once more on a fresh connection, if its body can be
// replayed. Failures are ferry::Error codes (core/result.hpp): kUnavailable (no endpoint),
// kResourceExhausted (the endpoint's connection limit), kConnectFailed, kDeadlineExceeded,
// kConnectionClosed, kUpstreamProtocol, kCancelled. A status the upstream answers with, 5xx
// included, is a Response, not an error.
// Ownership: Create gives a shared_ptr: a resolution round in flight holds a weak one, and a
// caller should hold the cluster across Send (responses keep their endpoint's pool alive, not
// the cluster). Thread safety: the event loop `io` only (Create, Send, Refresh, Sweep, reads).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"
#include "runtime/task_group.hpp"
#include "upstream/endpoint.hpp"
#include "upstream/exchange.hpp"
#include "upstream/load_balancer.hpp"
#include "upstream/pool_settings.hpp"
#include "upstream/resolver.hpp"
#include "upstream/service_health.hpp"

namespace ferry::runtime {
class BufferPool;
}

namespace ferry::upstream {

struct ClusterOptions {
  std::string name;                        // the service's name, for logs and errors
  std::vector<config::Address> addresses;  // IP literals and host names, in config order
  config::LbPolicy lb = config::LbPolicy::kRoundRobin;
  PoolSettings pool;
  Duration resolve_interval = std::chrono::seconds(30);  // host names only
  std::uint64_t seed = 0;  // the load balancer's (give each event loop its own)
  // Where Send reads the time for its deadline (a FakeClock in tests); null: SystemClock().
  // Must outlive the cluster.
  const Clock* clock = nullptr;
  // The service's node-wide endpoint health, shared by the node's clusters of the service: Send
  // reports each outcome to it (outlier ejection) and Pick skips the endpoints it says are
  // ejected or unhealthy. Null: every endpoint is usable.
  std::shared_ptr<ServiceHealth> health;
  // The HTTP version (http1; http2: every connection; auto: per connection, by ALPN) and the
  // HTTP/2 connections' settings.
  config::UpstreamProtocol protocol = config::UpstreamProtocol::kHttp1;
  std::uint32_t http2_max_streams = 100;  // per connection (the server's limit if lower)
  Duration http2_keepalive_interval = std::chrono::minutes(5);

  // From a service of the config (endpoints, lb, pool settings, resolve interval).
  static ClusterOptions FromService(const config::Service& service, std::uint64_t seed);
};

// What a cluster counted since it was made (per endpoint: Endpoint::health and its pool).
struct ClusterStats {
  std::uint64_t sent = 0;               // Send calls that got a response head
  std::uint64_t failed = 0;             // Send calls that ended in an error
  std::uint64_t keepalive_retries = 0;  // requests sent again after the keep-alive race
  std::uint64_t resolutions = 0;        // resolution rounds applied
  std::uint64_t http2_streams = 0;      // HTTP/2 streams opened (each HTTP/2 try is one)
};

class Cluster : public std::enable_shared_from_this<Cluster> {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // No endpoints until the first resolution: ResolveNow() (blocking) or Refresh().
  static std::shared_ptr<Cluster> Create(asio::io_context& io, ClusterOptions options,
                                         std::shared_ptr<Resolver> resolver,
                                         asio::any_io_executor resolve_on);
  ~Cluster();
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Resolves every address on this thread (blocking when there are host names): at start,
  // before traffic. Literal addresses alone never block.
  void ResolveNow();
  // If the service has host names, no round is running and resolve_interval passed since the
  // last one: resolves on `resolve_on` and applies the answer on this loop later. Call it from
  // a periodic timer. The first call after Create starts a round at once.
  void Refresh(TimePoint now);
  // Closes idle connections past the pool's idle timeout.
  void Sweep(TimePoint now);
  // Takes endpoints resolved elsewhere (the proxy's config snapshot, whose node resolves
  // names off the event loops) with new options (a config reload): the endpoints that stay keep
  // their pools (with the new pool settings), health and requests in flight; new ones get a
  // pool; the load balancer is rebuilt for the options' policy and seed. A cluster fed this way
  // no longer resolves by itself (Refresh does nothing); create it with a null resolver.
  void Update(ClusterOptions options, const std::vector<ResolvedAddress>& endpoints);

  // See the header comment. `request` must stay alive until Send completes; Send sets its
  // framing headers and a host if it has none. `deadline` bounds the whole exchange, including
  // the reading of the response body.
  Task<Result<Response>> Send(Request& request, TimePoint deadline);
  // The same, into `response` (the caller's: no Response is moved on the way back), for the
  // proxy's request path. `response` must stay alive until Send completes.
  Task<Result<void>> Send(Request& request, TimePoint deadline, Response& response);

  const std::string& name() const { return options_.name; }
  // The event loop the cluster belongs to (a caller that spawns a try of its own, e.g. a hedge).
  asio::io_context& io() const { return io_; }
  const std::vector<std::shared_ptr<Endpoint>>& endpoints() const { return endpoints_; }
  const ClusterStats& stats() const { return stats_; }

 private:
  Cluster(asio::io_context& io, ClusterOptions options, std::shared_ptr<Resolver> resolver,
          asio::any_io_executor resolve_on);
  void Apply(const ResolvedHosts& round);
  void SetEndpoints(const std::vector<ResolvedAddress>& addresses);
  std::shared_ptr<Endpoint> Pick(const Request& request);
  // Whether the lease's connection speaks HTTP/2 (the protocol, or ALPN's answer for auto).
  bool SpeaksHttp2(const StreamPool::Lease& lease) const;
  // Tells the service's health how a try on `endpoint` went.
  void Report(Endpoint& endpoint, bool failed);

  asio::io_context& io_;
  ClusterOptions options_;
  std::shared_ptr<Resolver> resolver_;
  asio::any_io_executor resolve_on_;
  std::shared_ptr<runtime::BufferPool> buffers_;
  std::vector<std::shared_ptr<Endpoint>> endpoints_;
  std::vector<EndpointState> load_;  // scratch for least_request picks
  std::unique_ptr<LoadBalancer> lb_;
  ClusterStats stats_;
  const Clock* clock_;
  bool uses_dns_ = false;
  bool fed_ = false;  // endpoints come from Update
  bool resolving_ = false;
  bool resolved_once_ = false;
  TimePoint next_resolve_{};
  // The HTTP/2 connections' reader and writer tasks (they end when their connection closes).
  runtime::TaskGroup tasks_;
};

}  // namespace ferry::upstream
