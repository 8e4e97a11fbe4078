// The records of a state log (one per queue and per subscription): what happened to each
// message of the source log, so that positions, attempts, acks and dead letters survive a
// crash. Recovery replays them in order from the newest complete checkpoint (see
// dispatcher_recovery.cpp, state_checkpoint.hpp). Values only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "bus/engine/embedded_options.hpp"
#include "core/result.hpp"

namespace ferry::bus {

struct StateRecord {
  enum class Type : std::uint8_t {
    kDeliver = 1,  // `sequence` delivered, attempt `attempt` (a crash counts as a failed one)
    kAck = 2,      // `sequence` acked
    kNack = 3,     // `sequence` nacked after attempt `attempt`; redeliver at `time_us`
    kDead = 4,     // `sequence` dead-lettered after `attempt` deliveries at `time_us`
    kReplay = 5,   // dead letter `sequence` back for delivery, attempts from zero
    kReset = 6,    // cursor reset to `sequence`: everything before is done, state cleared
    kConfig = 7,   // `text` is the subscription's options (EncodeSubscriptionOptions)
    // A checkpoint (state_checkpoint.hpp) begins: the whole state as of here, in the
    // `sequence` kCheckpointPart records that follow it; `text` is the options.
    kCheckpoint = 8,
    kCheckpointPart = 9,  // part `sequence` (from 0) of the checkpoint; `text` its items
  };
  Type type = Type::kAck;
  std::uint64_t sequence = 0;
  // Every source sequence below this is settled (acked, dead-lettered or filtered out) except
  // replayed dead letters, which have their own records. Carried by every record.
  std::uint64_t floor = 0;
  std::uint32_t attempt = 0;
  std::int64_t time_us = 0;
  std::string text;  // kDead: the reason; kConfig, kCheckpoint: options; kCheckpointPart: items
  std::string id;    // kDead: the message id (replay by id), with `key` its partition key
  std::string key;
};

std::string EncodeStateRecord(const StateRecord& record);
Result<StateRecord> DecodeStateRecord(std::string_view payload);

std::string EncodeSubscriptionOptions(const SubscriptionOptions& options);
Result<SubscriptionOptions> DecodeSubscriptionOptions(std::string_view text);

}  // namespace ferry::bus
