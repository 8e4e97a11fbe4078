// Options of the embedded broker (EmbeddedBroker, on the bus log): where its logs live, their
// durability and sizes, the file system. The backend-neutral ones are in bus/broker_options.hpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "bus/broker_options.hpp"
#include "bus/log/file_system.hpp"
#include "bus/log/log_options.hpp"
#include "bus/message.hpp"

namespace ferry::bus {

// Durability counters of one log (message log or state log).
struct LogDurabilityStats {
  std::uint64_t appends = 0;
  std::uint64_t sync_rounds = 0;     // fsync batches (group commits)
  std::uint64_t synced_records = 0;  // records those batches made durable
  std::uint64_t sync_errors = 0;
  std::uint64_t no_space_errors = 0;
  std::uint64_t bytes = 0;  // on disk
  std::uint64_t segments = 0;
  // Records retention deleted unconsumed because they were older than max_age (message logs).
  std::uint64_t retention_dropped_unconsumed = 0;
};

struct EmbeddedBrokerOptions {
  std::string data_dir;  // queues/<name>/, topics/<name>/ (with subscriptions/<name>/) below
  Durability durability = Durability::kBatch;
  std::chrono::milliseconds sync_interval{1000};  // kInterval only
  // A message id seen again within this window is answered as a duplicate. Default 10 min.
  BusDuration dedupe_window = std::chrono::minutes(10);
  // A queue's or subscription's state log (deliveries, acks, ...) is compacted once this many
  // record bytes were written to it since its last checkpoint, or twice that checkpoint's
  // size if more: the whole state is written anew and the older segments deleted. Smaller
  // keeps the state log and reopening shorter, at the cost of more checkpoint writes.
  // Default 1 MiB.
  std::uint64_t state_checkpoint_bytes = 1u << 20;
  std::uint64_t segment_bytes = 64u << 20;  // per log segment file
  std::shared_ptr<FileSystem> fs;           // default: the real disk
  ClockFn clock;                            // default: system_clock::now
  PostFn post;                              // required
  // Called on the bus thread after each fsync round of any log, with the log's path below
  // data_dir (e.g. "queues/orders/messages"): for metrics. Optional.
  std::function<void(const std::string& log, const SyncRoundInfo& round)> on_sync_round;
  // Called on the bus thread by SampleRates (about once a second) for each open log, with its
  // path below data_dir and its counters: for gauges. Optional.
  std::function<void(const std::string& log, const LogDurabilityStats& stats)> on_log_stats;
};

}  // namespace ferry::bus
