// The bus on a Ferry node: its own thread and event loop, the broker (one owner for every log's
// appends), the HTTP API listener, long-poll waiters, push delivery, and the bus metrics.
// Thread safety: Start() and Stop() are called from the main thread; everything else runs on
// the bus thread. The proxy's workers touch only topic_feeds(), whose calls post to it.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "core/result.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::upstream {
class HealthRegistry;
}
namespace ferry::tls {
class ClientTlsRegistry;
class ServerContext;
}  // namespace ferry::tls
namespace ferry::resilience {
class ServiceRegistry;
}
namespace ferry::proxy {
class TopicFeeds;
}

namespace ferry::bus {

class BusService {
 public:
  // `metrics_slot` is the registry slot the bus thread writes.
  static Result<std::unique_ptr<BusService>> Create(const config::Config& config,
                                                    observability::MetricsRegistry& metrics,
                                                    std::size_t metrics_slot);
  virtual ~BusService() = default;
  // Opens the broker (recovering the logs), declares queues, topics and subscriptions from the
  // config, binds the API listener and starts the thread. Errors: kIo, kInvalidArgument.
  virtual Result<void> Start() = 0;
  // The node's endpoint health (outlier ejection, health checks), which pushes share with the
  // proxy: a push skips the endpoints it says are out, and its outcomes count there too. Call
  // before Start; must outlive the bus. None: every endpoint is used.
  virtual void SetHealthRegistry(upstream::HealthRegistry* registry) = 0;
  // The node's per-service resilience state, which pushes share with the proxy: a push waits
  // while its service's circuit breaker is open, its outcomes count there, and it takes a slot
  // of the service's concurrency limit. Call before Start; must outlive the bus. None: pushes
  // without them.
  virtual void SetServiceRegistry(resilience::ServiceRegistry* registry) = 0;
  // The node's upstream TLS per service: a push to a service with `tls:` is made over it (a
  // mesh service over mutual TLS). Call before Start; must outlive the bus. None: plain TCP.
  virtual void SetClientTls(const tls::ClientTlsRegistry* registry) = 0;
  // TLS on the API's connections (`bus.tls`); null: plain TCP. Before Start it is what the
  // first connections get; after, from the main thread, new connections get it (a reload, a
  // certificate changed on disk) and open ones keep theirs.
  virtual void SetListenerTls(std::shared_ptr<const tls::ServerContext> context) = 0;
  // Stops accepting, answers waiting long-polls with 204, closes the logs (syncing them) and
  // joins the thread.
  virtual void Stop() = 0;
  // Applies a reloaded config (`next` has a bus: block); called from the main thread, it waits
  // while the bus thread declares `next`'s queues, topics and subscriptions: new ones are
  // created, the others take their new options, and each push follows its new settings and its
  // service's (a replaced push lets its deliveries in flight finish). What only a restart
  // changes (backend, listen, data_dir, durability, sync_interval, dedupe_window, segment_bytes,
  // state_checkpoint_bytes), and queues and topics that left the config, are logged and run on
  // as they are. Errors: those of creating a queue, topic or subscription (kIo, ...); what was
  // declared before the error stays.
  virtual Result<void> Reload(std::shared_ptr<const config::Config> next) = 0;
  // The feeds of topic routes (proxy/topic_feed.hpp), for the proxy's workers; any thread.
  virtual proxy::TopicFeeds* topic_feeds() = 0;
  // The address the API listens on (port resolved when the config said 0).
  virtual std::string listen_address() const = 0;
  // Whether the broker can serve (Broker::Available: a NATS backend is connected); true before
  // Start and after Stop. Any thread (the admin's /ready).
  virtual bool broker_available() const = 0;
};

}  // namespace ferry::bus
