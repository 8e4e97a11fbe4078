#include "bus/engine/embedded_backend.hpp"

#include <chrono>
#include <string>

#include "bus/engine/embedded_broker.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Broker>> OpenEmbeddedBackend(const config::Bus& config,
                                                    BrokerEnvironment env) {
  EmbeddedBrokerOptions options;
  options.data_dir = config.data_dir;
  options.durability = config.durability == config::BusDurability::kBatch ? Durability::kBatch
                                                                          : Durability::kInterval;
  options.sync_interval =
      std::chrono::duration_cast<std::chrono::milliseconds>(config.sync_interval);
  options.dedupe_window = std::chrono::duration_cast<BusDuration>(config.dedupe_window);
  options.segment_bytes = config.segment_bytes;
  options.state_checkpoint_bytes = config.state_checkpoint_bytes;
  options.post = std::move(env.post);
  if (env.clock) options.clock = std::move(env.clock);
  if (env.metrics != nullptr) {
    auto duration = env.metrics->AddHistogram(
        "ferry_bus_fsync_duration_seconds",
        "Duration of one fsync round (group commit) of a bus log, its fsyncs together.", {"log"});
    if (!duration) return tl::unexpected(duration.error());
    auto batch = env.metrics->AddHistogram(
        "ferry_bus_fsync_batch_records", "Records one fsync round (group commit) made durable.",
        {"log"}, {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384, 65536});
    if (!batch) return tl::unexpected(batch.error());
    options.on_sync_round = [duration = *duration, batch = *batch, slot = env.slot](
                                const std::string& log, const SyncRoundInfo& round) {
      duration->Get(log).Observe(slot, std::chrono::duration<double>(round.duration).count());
      batch->Get(log).Observe(slot, static_cast<double>(round.records));
    };
  }
  auto broker = EmbeddedBroker::Open(std::move(options));
  if (!broker) return tl::unexpected(broker.error());
  return std::unique_ptr<Broker>(std::move(*broker));
}

}  // namespace ferry::bus
