// The bus on a Ferry node: its own thread and event loop, the broker (one owner for every log's
// appends), the HTTP API listener, long-poll waiters, push delivery, and the bus metrics.
// Thread safety: Start() and Stop() are called from the main thread; everything else runs on
// the bus thread. Nothing on the proxy's workers touches it.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "core/result.hpp"
#include "observability/metrics_registry.hpp"

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
  // Stops accepting, answers waiting long-polls with 204, closes the logs (syncing them) and
  // joins the thread.
  virtual void Stop() = 0;
  // The address the API listens on (port resolved when the config said 0).
  virtual std::string listen_address() const = 0;
};

}  // namespace ferry::bus
