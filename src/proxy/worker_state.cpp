#include "proxy/worker_state.hpp"

#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/listener_handler.hpp"
#include "runtime/acceptor.hpp"
#include "server/server.hpp"
#include "tls/client_context.hpp"

namespace ferry::proxy {
struct WorkerState::ListenerServer {
  ListenerServer(WorkerState& worker, const std::string& name, const server::ServerOptions& o)
      : handler(worker, name), server(worker.io(), o, handler) {}
  ListenerHandler handler;
  server::Server server;  // after the handler it calls
};

WorkerState::WorkerState(runtime::Worker& worker, ProxyMetrics& metrics,
                         std::shared_ptr<observability::AccessLogSink> access_log,
                         const Clock& clock)
    : worker_(worker),
      metrics_(metrics),
      clock_(clock),
      random_(0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(worker.id() + 1) ^
              static_cast<std::uint64_t>(clock.now().time_since_epoch().count())),
      notices_(worker.io()),
      maintenance_timer_(worker.io()) {
  SetAccessLog(std::move(access_log));
  StartMaintenance();
}

WorkerState::~WorkerState() {
  if (access_log_) access_log_->Flush();
}

void WorkerState::SetAccessLog(std::shared_ptr<observability::AccessLogSink> sink) {
  if (access_log_) access_log_->Flush();
  access_log_.reset();
  if (sink) access_log_ = std::make_unique<observability::AccessLogWriter>(std::move(sink), slot());
}

void WorkerState::ApplySnapshot(std::shared_ptr<const Snapshot> snapshot) {
  // The node resolves host names (off the event loops) into the snapshot; each worker's
  // cluster takes that list rather than resolving again.
  std::map<std::string, ServiceState> next;
  for (const auto& [name, plan] : snapshot->services) {
    upstream::ClusterOptions options =
        upstream::ClusterOptions::FromService(*plan.config, random_.Next());
    options.clock = &clock_;
    if (health_ != nullptr) options.health = health_->Find(name);
    if (client_tls_ != nullptr) options.pool.tls = client_tls_->Find(name);
    ServiceState state;
    state.plan = &plan;
    if (auto old = services_.find(name); old != services_.end()) {
      state.cluster = std::move(old->second.cluster);
      state.http2_streams_counted = old->second.http2_streams_counted;
    } else {
      state.cluster = upstream::Cluster::Create(io(), options, nullptr, {});
    }
    state.cluster->Update(std::move(options), plan.endpoints);
    next.emplace(name, std::move(state));
  }
  services_ = std::move(next);
  snapshot_ = std::move(snapshot);
  ApplyServerOptions();
}

void WorkerState::SetListenerTls(ListenerTlsContexts contexts) {
  tls_ = std::move(contexts);
  ApplyServerOptions();
}

server::ServerOptions WorkerState::ServerOptionsFor(const std::string& name) const {
  server::ServerOptions options;
  if (snapshot_) {
    if (auto it = snapshot_->listeners.find(name); it != snapshot_->listeners.end()) {
      options = ServerOptionsOf(it->second.config->limits);
      options.http2 = it->second.config->http2;
    }
  }
  if (auto it = tls_.find(name); it != tls_.end()) options.tls = it->second;
  return options;
}

void WorkerState::ApplyServerOptions() {
  for (auto& [name, served] : listeners_) served->server.SetOptions(ServerOptionsFor(name));
}

ServiceState* WorkerState::Service(const std::string& name) {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : &it->second;
}

observability::Counter& WorkerState::LocalReplyCounter(std::string_view code) {
  for (auto& [name, counter] : reply_counters_) {
    if (name == code) return *counter;
  }
  observability::Counter& counter = metrics_.LocalReply(code);
  reply_counters_.emplace_back(std::string(code), &counter);
  return counter;
}

observability::Counter& WorkerState::GrpcCallCounter(std::string_view listener,
                                                     std::string_view route,
                                                     std::string_view method,
                                                     std::string_view status) {
  std::string key;
  key.reserve(listener.size() + route.size() + method.size() + status.size() + 3);
  key.append(listener).append(1, '\n').append(route).append(1, '\n').append(method);
  key.append(1, '\n').append(status);
  if (auto it = grpc_counters_.find(key); it != grpc_counters_.end()) return *it->second;
  if (grpc_counters_.size() >= kGrpcCacheSize) grpc_counters_.clear();
  observability::Counter& counter = metrics_.GrpcCall(listener, route, method, status);
  grpc_counters_.emplace(std::move(key), &counter);
  return counter;
}

std::string WorkerState::NewRequestId() {
  // A random (version 4) UUID.
  const std::uint64_t hi = (random_.Next() & 0xffffffffffff0fffull) | 0x0000000000004000ull;
  const std::uint64_t lo = (random_.Next() & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  // 8-4-4-4-12 hex digits, each group written from its last digit back (no per-digit checks:
  // one of these is made for every request without an id).
  static constexpr char kHex[] = "0123456789abcdef";
  char id[36];
  auto put = [&](char* at, std::uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) {
      at[i] = kHex[v & 0xf];
      v >>= 4;
    }
  };
  put(id, hi >> 32, 8);
  id[8] = '-';
  put(id + 9, hi >> 16, 4);
  id[13] = '-';
  put(id + 14, hi, 4);
  id[18] = '-';
  put(id + 19, lo >> 48, 4);
  id[23] = '-';
  put(id + 24, lo, 12);
  return std::string(id, sizeof(id));
}

void WorkerState::StartListener(const std::string& name, std::shared_ptr<tcp::acceptor> acceptor) {
  StopListener(name);
  auto served = std::make_unique<ListenerServer>(*this, name, ServerOptionsFor(name));
  served->server.Listen(std::make_unique<runtime::Acceptor>(std::move(*acceptor)));
  if (draining_) served->server.Drain();
  listeners_.emplace(name, std::move(served));
}

void WorkerState::StopListener(const std::string& name) {
  auto it = listeners_.find(name);
  if (it == listeners_.end()) return;
  it->second->server.Drain();
  stopped_.push_back(std::move(it->second));
  listeners_.erase(it);
}

void WorkerState::StopAllListeners() {
  while (!listeners_.empty()) StopListener(listeners_.begin()->first);
}

std::size_t WorkerState::connection_count() const {
  std::size_t count = 0;
  for (const auto& [name, served] : listeners_) count += served->server.connection_count();
  for (const auto& served : stopped_) count += served->server.connection_count();
  return count;
}

void WorkerState::StartDrain() {
  draining_ = true;
  StopAllListeners();
  auto hooks = std::move(drain_hooks_);  // a hook may remove itself
  drain_hooks_.clear();
  for (auto& [id, hook] : hooks) hook();
}

std::uint64_t WorkerState::AddDrainHook(std::function<void()> hook) {
  const std::uint64_t id = ++next_drain_hook_;
  drain_hooks_.emplace(id, std::move(hook));
  return id;
}

void WorkerState::CloseAll() {
  for (auto& [name, served] : listeners_) served->server.Close();
  for (auto& served : stopped_) served->server.Close();
}

void WorkerState::StartMaintenance() {
  maintenance_timer_.expires_after(std::chrono::milliseconds(100));
  maintenance_timer_.async_wait([this](const error_code& ec) {
    if (ec) return;
    Maintain();
    StartMaintenance();
  });
}

void WorkerState::Maintain() {
  if (access_log_) access_log_->Flush();
  // After a burst of connections has closed, hand the freed memory back to the OS: glibc keeps
  // freed heap in its arenas otherwise, and RSS would stay at the burst's peak.
  const std::size_t connections = connection_count();
  connections_peak_ = std::max(connections_peak_, connections);
  if (connections_peak_ >= connections + 256 && connections < connections_peak_ / 2) {
    ::malloc_trim(0);
    connections_peak_ = connections;
  }
  // A stopped listener's server goes once its last connection has ended.
  std::erase_if(stopped_,
                [](const auto& served) { return served->server.connection_count() == 0; });
  // (The pools stamp their idle connections with steady_clock themselves, so their sweep
  // reads it too, not the injected clock.)
  const auto now = std::chrono::steady_clock::now();
  for (auto& [name, state] : services_) {
    state.cluster->Sweep(now);
    std::int64_t open = 0;
    for (const auto& endpoint : state.cluster->endpoints()) {
      open += static_cast<std::int64_t>(endpoint->pool->open());
    }
    state.plan->series.connections->Set(slot(), open);
    const std::uint64_t streams = state.cluster->stats().http2_streams;
    state.plan->series.http2_streams->Add(slot(), streams - state.http2_streams_counted);
    state.http2_streams_counted = streams;
  }
}

}  // namespace ferry::proxy
