// Everything one worker owns for the proxy path: its current config snapshot (with each route's
// filter chain), an upstream client (upstream::Cluster: load balancer, connection pools,
// endpoint health) per service, fed with the snapshot's resolved endpoints, the I/O buffer pool,
// the access-log writer, the clock it reads time from, and a server (src/server) per listener,
// whose connections it drains and closes.
// Thread safety: used only on the worker's own thread. Other threads reach it through
// runtime::Worker::Post (ApplySnapshot, StartDrain, listener changes).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.hpp"
#include "observability/access_log.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/topic_feed.hpp"
#include "runtime/buffer_pool.hpp"
#include "runtime/notice_board.hpp"
#include "runtime/worker.hpp"
#include "server/server.hpp"
#include "upstream/cluster.hpp"
#include "upstream/load_balancer.hpp"
#include "upstream/service_health.hpp"

namespace ferry::tls {
class ClientTlsRegistry;
class ServerContext;
}  // namespace ferry::tls

namespace ferry::proxy {

// Listener name -> its TLS context (listeners without `tls:` are absent).
using ListenerTlsContexts = std::map<std::string, std::shared_ptr<const tls::ServerContext>>;

struct ServiceState {
  const ServicePlan* plan = nullptr;
  // The service's upstream client on this worker: kept across reloads (Cluster::Update with
  // the new snapshot's endpoints keeps the pools and health of those that stay).
  std::shared_ptr<upstream::Cluster> cluster;
  std::uint64_t http2_streams_counted = 0;  // of cluster->stats().http2_streams, in the metric
};

class WorkerState {
 public:
  // `clock` is where the proxy path reads the time (durations, the retry's budget, the access
  // log's timestamps); it must outlive the worker state.
  WorkerState(runtime::Worker& worker, ProxyMetrics& metrics,
              std::shared_ptr<observability::AccessLogSink> access_log,
              const Clock& clock = SystemClock());
  ~WorkerState();

  // Installs a new snapshot: each service's cluster takes its resolved endpoints (load
  // balancers are rebuilt, connection pools and health of endpoints that stay are kept). Exchanges
  // in flight keep the snapshot (and so the filter chains) they started with.
  void ApplySnapshot(std::shared_ptr<const Snapshot> snapshot);
  // The TLS context of each listener with `tls:` (by name): applies to new connections of the
  // listeners running now and of those started later. The node sets it before it starts a
  // listener or applies a snapshot that needs it.
  void SetListenerTls(ListenerTlsContexts contexts);
  void SetAccessLog(std::shared_ptr<observability::AccessLogSink> sink);
  // The node's endpoint health per service (ejection, health checks), which the clusters of
  // later snapshots share; must outlive the worker state. None: every endpoint is usable.
  void SetHealthRegistry(upstream::HealthRegistry* registry) { health_ = registry; }
  // The node's upstream TLS per service (null: every service plain TCP). Must outlive this.
  void SetClientTls(const tls::ClientTlsRegistry* registry) { client_tls_ = registry; }

  // Serves a listener on this worker (the acceptor, taken over, is already listening), with
  // the limits of the listener in the current snapshot.
  void StartListener(const std::string& name, std::shared_ptr<tcp::acceptor> acceptor);
  // Stops a listener: no more accepts, idle connections close now and the others after their
  // current exchange.
  void StopListener(const std::string& name);
  void StopAllListeners();
  // Graceful shutdown: stop accepting, close idle keep-alive connections now, and close the
  // others after their current exchange.
  void StartDrain();
  // Ends every connection now (the drain time is over): their tasks, upstream waits included,
  // are cancelled and finish promptly on this thread.
  void CloseAll();
  std::size_t connection_count() const;

  ServiceState* Service(const std::string& name);
  // The ferry_local_replies_total series of `code`. Ferry's own codes are resolved up front; a
  // filter's takes the registry lock the first time this worker sees it, then comes from here.
  observability::Counter& LocalReplyCounter(std::string_view code);
  // The ferry_grpc_calls_total series of a call (ProxyMetrics::GrpcCall), kept per worker after
  // the first (at most kGrpcCacheSize; the cache starts over past that).
  observability::Counter& GrpcCallCounter(std::string_view listener, std::string_view route,
                                          std::string_view method, std::string_view status);
  std::string NewRequestId();

  runtime::Worker& worker() { return worker_; }
  asio::io_context& io() { return worker_.io(); }
  std::size_t slot() const { return static_cast<std::size_t>(worker_.id()); }
  const std::shared_ptr<const Snapshot>& snapshot() const { return snapshot_; }
  const Clock& clock() const { return clock_; }
  runtime::BufferPool& buffers() { return buffers_; }
  upstream::RandomSource& random() { return random_; }
  // The notices of this worker's watched upstream tries (the resilience client's hedges).
  runtime::NoticeBoard& notices() { return notices_; }
  ProxyMetrics* metrics() { return &metrics_; }
  observability::AccessLogWriter* access_log() { return access_log_.get(); }
  bool draining() const { return draining_; }
  // The node's bus topics, for topic routes (null: no bus on this node). Must outlive this.
  void SetTopicFeeds(TopicFeeds* feeds) { topic_feeds_ = feeds; }
  TopicFeeds* topic_feeds() const { return topic_feeds_; }
  // Long-lived streams (topic routes) end at a drain rather than wait for drain_time: each
  // adds a hook, which StartDrain runs (once), and removes it when it ends.
  std::uint64_t AddDrainHook(std::function<void()> hook);
  void RemoveDrainHook(std::uint64_t id) { drain_hooks_.erase(id); }

 private:
  server::ServerOptions ServerOptionsFor(const std::string& name) const;
  void ApplyServerOptions();
  void StartMaintenance();
  void Maintain();

  runtime::Worker& worker_;
  ProxyMetrics& metrics_;
  std::shared_ptr<const Snapshot> snapshot_;
  ListenerTlsContexts tls_;
  const Clock& clock_;
  std::map<std::string, ServiceState> services_;
  std::vector<std::pair<std::string, observability::Counter*>> reply_counters_;  // filters' codes
  static constexpr std::size_t kGrpcCacheSize = 4096;
  std::unordered_map<std::string, observability::Counter*> grpc_counters_;
  struct ListenerServer;  // a listener's handler and server (worker_state.cpp)
  std::map<std::string, std::unique_ptr<ListenerServer>> listeners_;
  std::vector<std::unique_ptr<ListenerServer>> stopped_;  // until their connections end
  runtime::BufferPool buffers_;
  std::unique_ptr<observability::AccessLogWriter> access_log_;
  upstream::Xoshiro256 random_;
  runtime::NoticeBoard notices_;
  upstream::HealthRegistry* health_ = nullptr;
  const tls::ClientTlsRegistry* client_tls_ = nullptr;
  asio::steady_timer maintenance_timer_;
  std::size_t connections_peak_ = 0;  // since memory was last handed back to the OS
  bool draining_ = false;
  TopicFeeds* topic_feeds_ = nullptr;
  std::map<std::uint64_t, std::function<void()>> drain_hooks_;
  std::uint64_t next_drain_hook_ = 0;
};

}  // namespace ferry::proxy
