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
  options.dedupe_window = config.dedupe_window;
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
    auto rounds = env.metrics->AddGauge("ferry_bus_fsync_batches",
                                        "fsync rounds (group commits) since start; records "
                                        "per batch = ferry_bus_fsync_records / this.",
                                        {"log"});
    if (!rounds) return tl::unexpected(rounds.error());
    auto records = env.metrics->AddGauge(
        "ferry_bus_fsync_records", "Records made durable by fsync rounds since start.", {"log"});
    if (!records) return tl::unexpected(records.error());
    auto dropped = env.metrics->AddGauge(
        "ferry_bus_retention_dropped_unconsumed",
        "Unconsumed records retention deleted since start because they were older than the "
        "log's max_age.",
        {"log"});
    if (!dropped) return tl::unexpected(dropped.error());
    // Each second (SampleRates), on the bus thread.
    options.on_log_stats = [rounds = *rounds, records = *records, dropped = *dropped,
                            slot = env.slot](const std::string& log, const LogDurabilityStats& s) {
      rounds->Get(log).Set(slot, static_cast<std::int64_t>(s.sync_rounds));
      records->Get(log).Set(slot, static_cast<std::int64_t>(s.synced_records));
      // Only message logs have a max_age, so only they get the series.
      if (log.ends_with("/messages")) {
        dropped->Get(log).Set(slot, static_cast<std::int64_t>(s.retention_dropped_unconsumed));
      }
    };
  }
  auto broker = EmbeddedBroker::Open(std::move(options));
  if (!broker) return tl::unexpected(broker.error());
  return std::unique_ptr<Broker>(std::move(*broker));
}

}  // namespace ferry::bus
