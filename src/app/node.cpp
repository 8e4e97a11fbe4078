#include "app/node.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/signal_set.hpp>
#include <boost/json.hpp>
#include <map>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "admin/admin_server.hpp"
#include "admin/breakers.hpp"
#include "app/cert_renewer.hpp"
#include "app/jwks_fetch.hpp"
#include "app/upstream_health.hpp"
#include "auth/jwks_updater.hpp"
#include "auth/provider.hpp"
#include "bus/api/bus_service.hpp"
#include "config/config.hpp"
#include "idempotency/node_store.hpp"
#include "observability/access_log.hpp"
#include "observability/json_text.hpp"
#include "observability/metrics_registry.hpp"
#include "observability/process_metrics.hpp"
#include "proxy/snapshot.hpp"
#include "proxy/worker_state.hpp"
#include "runtime/listener.hpp"
#include "runtime/worker.hpp"
#include "server/handshake_failures.hpp"
#include "tls/client_context.hpp"
#include "tls/listener_contexts.hpp"
#include "upstream/resolver.hpp"

namespace ferry::app {
namespace {

using Clock = std::chrono::steady_clock;

// How long a start waits for a first mesh certificate from `ferry ca serve` (retrying).
constexpr Duration kBootstrapPatience = std::chrono::seconds(30);

// Identity of a config file on disk, to notice edits (including replace-by-rename).
struct FileStamp {
  ino_t inode = 0;
  off_t size = 0;
  std::int64_t mtime_ns = 0;
  bool operator==(const FileStamp&) const = default;
};

FileStamp Stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {};
  return {st.st_ino, st.st_size,
          static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

class Node {
 public:
  Node(std::string config_path, std::shared_ptr<const config::Config> config)
      : config_path_(std::move(config_path)),
        config_(std::move(config)),
        worker_count_(config_->workers > 0
                          ? config_->workers
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        // Slots: one per worker, one for the bus thread, then the main thread's.
        registry_(static_cast<std::size_t>(worker_count_) + 1),
        metrics_(registry_),
        signals_(io_, SIGHUP, SIGTERM, SIGINT),
        watch_timer_(io_),
        drain_timer_(io_),
        resolve_timer_(io_),
        health_(io_, registry_) {}

  int Run() {
    (void)observability::RegisterProcessMetrics(registry_);
    (void)registry_.AddCallbackGauge("ferry_ready", "1 while the node accepts traffic.",
                                     [this] { return Ready() ? 1.0 : 0.0; });
    if (auto sink = OpenAccessLog(*config_); !sink) {
      spdlog::error("{}", sink.error().message());
      return 1;
    } else {
      access_log_ = *sink;
    }
    if (auto r = idempotency::ConfigureNodeStore(*config_, registry_); !r) {
      spdlog::error("{}", r.error().message());
      return 1;
    }
    resilience_.Configure(*config_);
    if (auto family = registry_.AddCounter(
            "ferry_jwt_verifications_total",
            "Bearer tokens checked by the jwt filter, by provider and result: ok, missing, "
            "jwks_unavailable, or why the token was refused.",
            {"provider", "result"})) {
      auth::SetVerificationCounters(*family);
    }
    // A node that renews its mesh certificate from `ferry ca serve` and has none yet (or an
    // expired one) gets it now, with its bootstrap token, before any TLS context reads it.
    RegisterRenewalMetrics();
    if (config_->mesh && config_->mesh->renew) {
      if (auto exit_code = GetFirstCertificate()) return *exit_code;
    }
    // Upstream TLS before anything connects: a service whose context cannot be made (a missing
    // file, a key others can read) stops the start.
    if (auto r = client_tls_.Apply(*config_); !r) {
      spdlog::error("upstream TLS: {}", r.error().message());
      return 1;
    }
    health_.SetClientTls(&client_tls_);
    if (auto r = CheckJwksCas(*config_); !r) {
      spdlog::error("{}", r.error().message());
      return 1;
    }
    snapshot_ = proxy::BuildSnapshot(config_, resolver_, metrics_, ++generation_,
                                     proxy::BuiltinFilters(), &resilience_);
    health_.Apply(*config_, *snapshot_);
    // The snapshot's jwt filters made the providers: load their JWKS once before serving (a
    // file is then ready for the first request), then keep them current on the updater's thread.
    jwks_.RunOnce();
    jwks_.Start();
    for (int i = 0; i < worker_count_; ++i) {
      workers_.push_back(std::make_unique<runtime::Worker>(i));
      states_.push_back(
          std::make_unique<proxy::WorkerState>(*workers_.back(), metrics_, access_log_));
      states_.back()->SetHealthRegistry(&health_.registry());
      states_.back()->SetClientTls(&client_tls_);
      states_.back()->ApplySnapshot(snapshot_);
    }
    if (auto r = tls_.Sync(*config_); !r) {
      spdlog::error("{}", r.error().message());
      return 1;
    }
    for (auto& state : states_) state->SetListenerTls(tls_.contexts());
    if (auto r = SyncListeners(*config_); !r) {
      spdlog::error("{}", r.error().message());
      return 1;
    }
    if (config_->bus) {
      auto bus =
          bus::BusService::Create(*config_, registry_, static_cast<std::size_t>(worker_count_));
      if (!bus) {
        spdlog::error("bus: {}", bus.error().message());
        return 1;
      }
      bus_ = std::move(*bus);
      bus_->SetHealthRegistry(&health_.registry());
      bus_->SetClientTls(&client_tls_);
      bus_->SetServiceRegistry(&resilience_);
      bus_->SetListenerTls(tls_.Find(tls::ListenerContexts::kBusContext));
      if (auto r = bus_->Start(); !r) {
        spdlog::error("bus: {}", r.error().message());
        return 1;
      }
      for (auto& state : states_) state->SetTopicFeeds(bus_->topic_feeds());
    }
    admin_ = std::make_unique<admin::AdminServer>(io_, AdminRoutes(), AdminWriteRoutes());
    admin_->SetTls(tls_.Find(tls::ListenerContexts::kAdminContext));
    admin_->CountHandshakeFailures(server::HandshakeFailures(registry_), registry_.main_slot());
    if (auto r = admin_->Start(config_->admin.listen); !r) {
      spdlog::error("admin: {}", r.error().message());
      return 1;
    }
    for (auto& w : workers_) w->Start();
    ready_ = true;
    const auto admin_ep = admin_->local_endpoint();
    spdlog::info("ferry {} ready: {} worker(s), admin on {}:{}", FERRY_VERSION, worker_count_,
                 admin_ep.address().to_string(), admin_ep.port());
    WaitForSignal();
    file_stamp_ = Stamp(config_path_);
    WatchConfigFile();
    ScheduleResolve();
    health_.Start();
    if (renewer_) renewer_->Start();
    io_.run();
    if (renewer_) renewer_->Stop();
    jwks_.Stop();
    for (auto& w : workers_) w->Stop();
    for (auto& w : workers_) w->Join();
    if (bus_) bus_->Stop();  // closes (and syncs) the bus logs
    if (open_connections_ > 0) {
      // A session did not finish even after its sockets were cancelled. Destroying the workers
      // would destroy its coroutine frame under it; leave without tearing down instead.
      spdlog::error("{} connection(s) did not close; exiting without teardown", open_connections_);
      spdlog::shutdown();
      std::_Exit(exit_code_);
    }
    states_.clear();  // flushes access logs
    workers_.clear();
    snapshot_.reset();
    idempotency::CloseNodeStore();
    spdlog::info("ferry stopped");
    return exit_code_;
  }

 private:
  static Result<std::shared_ptr<observability::AccessLogSink>> OpenAccessLog(
      const config::Config& c, observability::MetricsRegistry& registry) {
    if (!c.access_log.enabled) return std::shared_ptr<observability::AccessLogSink>();
    return observability::AccessLogSink::Open(c.access_log.path, registry);
  }
  Result<std::shared_ptr<observability::AccessLogSink>> OpenAccessLog(const config::Config& c) {
    return OpenAccessLog(c, registry_);
  }

  // Counted whether or not the node renews (a reload may add mesh.renew).
  void RegisterRenewalMetrics() {
    (void)registry_.AddCallbackCounter(
        "ferry_mesh_renewals_total",
        "Mesh certificates this node got from ferry ca serve (mesh.renew).",
        [this] { return renewer_ ? static_cast<double>(renewer_->renewals()) : 0.0; });
    (void)registry_.AddCallbackCounter(
        "ferry_mesh_renewal_failures_total",
        "Failed attempts to get a mesh certificate from ferry ca serve (retried with backoff).",
        [this] { return renewer_ ? static_cast<double>(renewer_->failures()) : 0.0; });
    (void)registry_.AddCallbackGauge(
        "ferry_mesh_certificate_expiry_seconds",
        "Unix time at which the renewed mesh certificate ends (0 without mesh.renew).",
        [this] { return renewer_ ? renewer_->expiry() : 0.0; });
  }

  // A reload's mesh.renew: applied to the running renewer, or a renewer started for it.
  void UpdateRenewer() {
    const bool renew = config_->mesh && config_->mesh->renew;
    if (renewer_) {
      renewer_->Update(renew ? config_->mesh : std::nullopt);
    } else if (renew) {
      renewer_ = std::make_unique<CertRenewer>(*config_->mesh);
      renewer_->Start();
    }
  }

  // Per-worker acceptors of one listener, with the address they are bound to.
  struct OpenListener {
    std::string address;  // config address, to notice a change
    tcp::endpoint bound;
    std::vector<std::shared_ptr<tcp::acceptor>> acceptors;  // one per worker
  };

  // Opens listeners that are new or moved, and closes those that are gone. Sockets of
  // listeners that stay are never closed: closing a SO_REUSEPORT socket drops its accept queue.
  Result<void> SyncListeners(const config::Config& next) {
    std::map<std::string, OpenListener> opened;
    for (const config::Listener& l : next.listeners) {
      auto it = listeners_.find(l.name);
      if (it != listeners_.end() && it->second.address == l.listen.ToString()) continue;
      OpenListener ol;
      ol.address = l.listen.ToString();
      config::Address addr = l.listen;
      for (int i = 0; i < worker_count_; ++i) {
        auto acceptor = runtime::OpenListener(workers_[i]->io(), addr, /*reuse_port=*/true);
        if (!acceptor) {
          return Fail(ErrorCode::kIo,
                      fmt::format("listener {}: {}", l.name, acceptor.error().message()));
        }
        if (i == 0) {
          error_code ignored;
          ol.bound = acceptor->local_endpoint(ignored);
          addr.port = ol.bound.port();  // port 0: the others join the port the kernel chose
        }
        ol.acceptors.push_back(std::make_shared<tcp::acceptor>(std::move(*acceptor)));
      }
      opened.emplace(l.name, std::move(ol));
    }
    // All new sockets are open: commit. Stop the listeners that are gone or moved.
    for (auto it = listeners_.begin(); it != listeners_.end();) {
      const bool keep = std::any_of(
          next.listeners.begin(), next.listeners.end(),
          [&](const config::Listener& l) { return l.name == it->first && !opened.count(l.name); });
      if (keep) {
        ++it;
        continue;
      }
      for (int i = 0; i < worker_count_; ++i) {
        workers_[i]->Post(
            [state = states_[i].get(), name = it->first] { state->StopListener(name); });
      }
      it = listeners_.erase(it);
    }
    for (auto& [name, ol] : opened) {
      spdlog::info("listener {} on {}:{}", name, ol.bound.address().to_string(), ol.bound.port());
      for (int i = 0; i < worker_count_; ++i) {
        workers_[i]->Post([state = states_[i].get(), name = name, acceptor = ol.acceptors[i]] {
          state->StartListener(name, acceptor);
        });
      }
      listeners_[name] = std::move(ol);
    }
    return Ok();
  }

  void Reload(const char* why) {
    auto next = config::LoadFile(config_path_);
    if (!next) {
      metrics_.reload_failures.Add(registry_.main_slot());
      spdlog::error("reload ({}) rejected; the running config stays:\n{}", why,
                    next.error().message());
      return;
    }
    const config::Config& c = **next;
    if (c.workers != config_->workers) {
      spdlog::warn("reload: 'workers' changes only on restart");
    }
    if (c.bus.has_value() != config_->bus.has_value()) {
      spdlog::warn("reload: adding or removing the bus: block applies only on restart");
    }
    if (c.admin.listen.ToString() != config_->admin.listen.ToString()) {
      spdlog::warn("reload: 'admin.listen' changes only on restart");
    }
    if (auto r = idempotency::ConfigureNodeStore(c, registry_); !r) {
      metrics_.reload_failures.Add(registry_.main_slot());
      spdlog::error("reload ({}) rejected; the running config stays: {}", why, r.error().message());
      return;
    }
    if (auto r = CheckJwksCas(c); !r) {
      metrics_.reload_failures.Add(registry_.main_slot());
      spdlog::error("reload ({}) rejected; the running config stays: {}", why, r.error().message());
      return;
    }
    if (auto r = client_tls_.Apply(c); !r) {
      metrics_.reload_failures.Add(registry_.main_slot());
      spdlog::error("reload ({}) rejected; the running config stays: upstream TLS: {}", why,
                    r.error().message());
      return;
    }
    // Before the listeners start: a new TLS listener must never accept without its context.
    auto tls = tls_.Sync(c);
    if (!tls) {
      metrics_.reload_failures.Add(registry_.main_slot());
      spdlog::error("reload ({}) rejected; the running config stays: {}", why,
                    tls.error().message());
      return;
    }
    for (const std::string& warning : *tls) spdlog::error("reload ({}): {}", why, warning);
    for (int i = 0; i < worker_count_; ++i) {
      workers_[i]->Post([state = states_[i].get(), contexts = tls_.contexts()]() mutable {
        state->SetListenerTls(std::move(contexts));
      });
    }
    admin_->SetTls(tls_.Find(tls::ListenerContexts::kAdminContext));
    if (bus_) bus_->SetListenerTls(tls_.Find(tls::ListenerContexts::kBusContext));
    if (auto r = SyncListeners(c); !r) {
      metrics_.reload_failures.Add(registry_.main_slot());
      spdlog::error("reload ({}) rejected; the running config stays: {}", why, r.error().message());
      return;
    }
    std::shared_ptr<observability::AccessLogSink> sink = access_log_;
    if (c.access_log.enabled != config_->access_log.enabled ||
        c.access_log.path != config_->access_log.path) {
      auto opened = OpenAccessLog(c);
      if (!opened) {
        spdlog::error("reload: access log: {}; keeping the old one", opened.error().message());
      } else {
        sink = *opened;
      }
    }
    // The bus declares the new queues, topics and subscriptions and updates the rest; what it
    // cannot change without a restart it logs. A failure there (a disk error creating a log)
    // leaves the bus with what it declared so far, and the rest of the reload goes on.
    if (bus_ && c.bus) {
      if (auto r = bus_->Reload(*next); !r) {
        metrics_.reload_failures.Add(registry_.main_slot());
        spdlog::error("reload ({}): bus: {}", why, r.error().message());
      }
    }
    config_ = *next;
    UpdateRenewer();
    resilience_.Configure(*config_);  // breakers and limits keep their state
    snapshot_ = proxy::BuildSnapshot(config_, resolver_, metrics_, ++generation_,
                                     proxy::BuiltinFilters(), &resilience_);
    health_.Apply(*config_, *snapshot_);
    const bool new_sink = sink != access_log_;
    access_log_ = sink;
    for (int i = 0; i < worker_count_; ++i) {
      workers_[i]->Post([state = states_[i].get(), snap = snapshot_, sink, new_sink] {
        if (new_sink) state->SetAccessLog(sink);
        state->ApplySnapshot(snap);
      });
    }
    metrics_.reloads.Add(registry_.main_slot());
    spdlog::info("config reloaded ({}): generation {}", why, generation_);
  }

  // Makes the renewer and has it get a certificate when there is no usable one: nullopt to go
  // on, or the exit code (0: a SIGTERM or SIGINT came meanwhile, which stops the start at once;
  // a SIGHUP has nothing to reload yet).
  std::optional<int> GetFirstCertificate() {
    renewer_ = std::make_unique<CertRenewer>(*config_->mesh);
    bool stop = false;
    bool waiting = false;
    auto stop_asked = [this, &stop, &waiting] {
      if (!waiting) {
        waiting = true;
        signals_.async_wait([&stop, &waiting](const error_code& ec, int signal) {
          waiting = false;
          if (!ec && signal != SIGHUP) stop = true;
        });
      }
      io_.restart();
      io_.poll();
      return stop;
    };
    auto got = renewer_->EnsureCertificate(kBootstrapPatience, stop_asked);
    signals_.cancel();
    io_.restart();
    io_.poll();  // runs the cancelled wait's handler: nothing refers to `stop` after this
    io_.restart();
    if (stop) {
      spdlog::info("stopped by a signal while getting the first mesh certificate");
      return 0;
    }
    if (!got) {
      spdlog::error("mesh.renew: no certificate: {}", got.error().message());
      return 1;
    }
    return std::nullopt;
  }

  void WaitForSignal() {
    signals_.async_wait([this](const error_code& ec, int signal) {
      if (ec) return;
      if (signal == SIGHUP) {
        // A deploy tool that replaces the file and then sends SIGHUP races the file watcher: if
        // the watcher just loaded this very file, the SIGHUP is answered by that reload instead
        // of applying the same config twice. A SIGHUP for an unchanged file later still reloads.
        const FileStamp now = Stamp(config_path_);
        if (now.inode != 0 && now == watcher_loaded_ &&
            Clock::now() - watcher_loaded_at_ < std::chrono::seconds(2)) {
          spdlog::info("SIGHUP: the file watcher has just loaded this config file; not again");
        } else {
          Reload("SIGHUP");
        }
        file_stamp_ = Stamp(config_path_);
        WaitForSignal();
      } else {
        Drain();
      }
    });
  }

  void WatchConfigFile() {
    watch_timer_.expires_after(std::chrono::seconds(1));
    watch_timer_.async_wait([this](const error_code& ec) {
      if (ec) return;
      const FileStamp now = Stamp(config_path_);
      if (now.inode != 0 && !(now == file_stamp_)) {
        file_stamp_ = now;
        Reload("file changed");
        watcher_loaded_ = now;
        watcher_loaded_at_ = Clock::now();
      } else if (tls_.FilesChanged()) {
        Reload("a TLS certificate, key or CA file changed");
      } else {
        // The files upstream TLS is made from (mesh certificates among them): changed ones
        // give their services a new context for new connections; a stat per file when not.
        (void)client_tls_.Apply(*config_);
      }
      WatchConfigFile();
    });
  }

  // Re-resolves DNS names on the shortest resolve_interval of any service that uses one.
  void ScheduleResolve() {
    Duration every = Duration::max();
    for (const auto& [name, s] : config_->services) {
      for (const config::Address& a : s.endpoints) {
        if (!upstream::IsIpLiteral(a.host)) every = std::min(every, s.resolve_interval);
      }
    }
    if (every == Duration::max()) every = std::chrono::seconds(5);  // check again later
    resolve_timer_.expires_after(every);
    resolve_timer_.async_wait([this](const error_code& ec) {
      if (ec) return;
      auto next = proxy::BuildSnapshot(config_, resolver_, metrics_, generation_ + 1,
                                       proxy::BuiltinFilters(), &resilience_);
      if (!proxy::SameEndpoints(*next, *snapshot_)) {
        ++generation_;
        snapshot_ = next;
        health_.Apply(*config_, *snapshot_);
        spdlog::info("DNS: endpoints changed; generation {}", generation_);
        for (int i = 0; i < worker_count_; ++i) {
          workers_[i]->Post(
              [state = states_[i].get(), snap = snapshot_] { state->ApplySnapshot(snap); });
        }
      }
      ScheduleResolve();
    });
  }

  void Drain() {
    if (draining_) return;
    draining_ = true;
    ready_ = false;
    spdlog::info("draining: up to {} for in-flight requests", FormatDuration(config_->drain_time));
    signals_.cancel();
    watch_timer_.cancel();
    resolve_timer_.cancel();
    health_.Stop();
    drain_deadline_ = Clock::now() + config_->drain_time;
    for (int i = 0; i < worker_count_; ++i) {
      workers_[i]->Post([state = states_[i].get()] { state->StartDrain(); });
    }
    listeners_.clear();
    CheckDrained();
  }

  void CheckDrained() {
    // Ask each worker for its connection count; finish when all are at zero or time is up.
    auto counts = std::make_shared<std::vector<std::size_t>>(worker_count_, 1);
    auto pending = std::make_shared<std::atomic<int>>(worker_count_);
    for (int i = 0; i < worker_count_; ++i) {
      workers_[i]->Post([this, state = states_[i].get(), counts, pending, i] {
        (*counts)[i] = state->connection_count();
        if (pending->fetch_sub(1) == 1) {
          asio::post(io_, [this, counts] { AfterCount(*counts); });
        }
      });
    }
  }

  void AfterCount(const std::vector<std::size_t>& counts) {
    std::size_t open = 0;
    for (std::size_t c : counts) open += c;
    open_connections_ = open;
    const auto now = Clock::now();
    if (open > 0 && now >= drain_deadline_ && !closing_) {
      // Drain time is over: end what is left. Sessions then finish on their own threads, so
      // nothing is torn down under a suspended coroutine.
      spdlog::warn("drain time over: closing {} connection(s)", open);
      closing_ = true;
      for (int i = 0; i < worker_count_; ++i) {
        workers_[i]->Post([state = states_[i].get()] { state->CloseAll(); });
      }
    }
    if (open == 0 || now >= drain_deadline_ + std::chrono::seconds(2)) {
      admin_->Stop();
      io_.stop();
      return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(20));
    drain_timer_.async_wait([this](const error_code& ec) {
      if (!ec) CheckDrained();
    });
  }

  // Serving, not draining, and the bus's broker (if any) can serve: a NATS backend that lost
  // its cluster makes the node unready, so a load balancer sends bus traffic elsewhere.
  bool Ready() const { return ready_.load() && (!bus_ || bus_->broker_available()); }

  std::map<std::string, admin::AdminHandler> AdminRoutes() {
    std::map<std::string, admin::AdminHandler> routes;
    routes["/live"] = [] {
      return admin::AdminResponse{200, "application/json", "{\"live\":true}\n"};
    };
    routes["/ready"] = [this] {
      const bool ready = Ready();
      return admin::AdminResponse{ready ? 200 : 503, "application/json",
                                  ready ? "{\"ready\":true}\n" : "{\"ready\":false}\n"};
    };
    routes["/metrics"] = [this] {
      return admin::AdminResponse{200, "text/plain; version=0.0.4; charset=utf-8",
                                  registry_.RenderPrometheus()};
    };
    routes["/config"] = [this] {
      return admin::AdminResponse{200, "application/json", config::ToJson(*config_) + "\n"};
    };
    routes["/stats"] = [this] {
      boost::json::object doc;
      doc["version"] = FERRY_VERSION;
      doc["workers"] = worker_count_;
      doc["ready"] = ready_.load();
      doc["config_generation"] = generation_;
      boost::json::object listeners;
      for (const auto& [name, ol] : listeners_) {
        listeners[name] = fmt::format("{}:{}", ol.bound.address().to_string(), ol.bound.port());
      }
      doc["listeners"] = std::move(listeners);
      if (bus_) doc["bus"] = bus_->listen_address();
      boost::json::object services;
      for (const auto& [name, plan] : snapshot_->services) {
        boost::json::array eps;
        for (const auto& e : plan.endpoints) eps.push_back(boost::json::string(e.id));
        services[name] = std::move(eps);
      }
      doc["services"] = std::move(services);
      doc["endpoint_health"] = health_.ToJson();
      doc["circuit_breakers"] = admin::DescribeBreakers(resilience_.Breakers(*config_));
      doc["metrics"] = registry_.RenderJson();
      return admin::AdminResponse{200, "application/json", observability::JsonText(doc) + "\n"};
    };
    routes[std::string(admin::kBreakersPath)] = [this] {
      return admin::ListBreakers(resilience_.Breakers(*config_));
    };
    return routes;
  }

  std::map<std::string, admin::AdminWriteHandler> AdminWriteRoutes() {
    std::map<std::string, admin::AdminWriteHandler> routes;
    routes[std::string(admin::kBreakersPrefix)] = [this](const admin::AdminRequest& request) {
      return admin::SetBreakerMode(request, resilience_.Breakers(*config_));
    };
    return routes;
  }

  std::string config_path_;
  std::shared_ptr<const config::Config> config_;
  int worker_count_;
  observability::MetricsRegistry registry_;
  auth::JwksUpdater jwks_{&FetchJwks};
  proxy::ProxyMetrics metrics_;
  asio::io_context io_{1};
  asio::signal_set signals_;
  asio::steady_timer watch_timer_;
  asio::steady_timer drain_timer_;
  asio::steady_timer resolve_timer_;
  // A name that stops resolving keeps its last addresses (see LastGoodResolver).
  upstream::LastGoodResolver resolver_{std::make_shared<upstream::SystemResolver>()};
  UpstreamHealth health_;              // ejection and health checks, node-wide
  tls::ClientTlsRegistry client_tls_;  // upstream TLS per service, node-wide
  // Renews the mesh certificate (mesh.renew); null without one.
  std::unique_ptr<CertRenewer> renewer_;
  // Per-service resilience state (retry budgets, breakers, concurrency limits): the node's,
  // kept across reloads, shared by the workers and the bus.
  resilience::ServiceRegistry resilience_{&registry_};
  std::shared_ptr<const proxy::Snapshot> snapshot_;
  std::shared_ptr<observability::AccessLogSink> access_log_;
  std::vector<std::unique_ptr<runtime::Worker>> workers_;
  std::vector<std::unique_ptr<proxy::WorkerState>> states_;
  tls::ListenerContexts tls_;  // the listeners' TLS contexts, rebuilt when their files change
  std::map<std::string, OpenListener> listeners_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::unique_ptr<bus::BusService> bus_;
  std::atomic<bool> ready_{false};
  bool draining_ = false;
  bool closing_ = false;              // drain time over: connections are being cut
  std::size_t open_connections_ = 0;  // at the last count
  Clock::time_point drain_deadline_{};
  FileStamp file_stamp_;
  FileStamp watcher_loaded_;  // the file the watcher last reloaded, and when (see SIGHUP)
  Clock::time_point watcher_loaded_at_{};
  std::uint64_t generation_ = 0;
  int exit_code_ = 0;
};

}  // namespace

int RunNode(const std::string& config_path) {
  auto config = config::LoadFile(config_path);
  if (!config) {
    fmt::print(stderr, "{}\n", config.error().message());
    return 1;
  }
  Node node(config_path, *config);
  return node.Run();
}

}  // namespace ferry::app
