// A checkpoint of one inbox's state (a Dispatcher's): everything recovery needs, written to the
// state log so that every record before it can be deleted. Values only.
//
// On the log a checkpoint is a kCheckpoint record (the floor, the options, the number of parts)
// followed by that many kCheckpointPart records, numbered from 0, each holding a run of items
// (settled ranges, entries with a delivery history, dead letters) of at most `max_part_bytes`,
// so a big state never makes one record over the log's max_record_bytes. The dispatcher writes
// the records back to back; only a crash can leave a checkpoint unfinished, and recovery
// ignores an unfinished one (CheckpointAssembler) and keeps the state the records before built.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bus/engine/sequence_ranges.hpp"
#include "bus/engine/state_record.hpp"

namespace ferry::bus {

struct StateCheckpoint {
  // A message with a delivery history, or a replayed dead letter.
  struct Entry {
    std::uint64_t sequence = 0;
    std::uint32_t attempt = 0;  // deliveries so far
    std::uint32_t nacks = 0;
    bool in_flight = false;                   // leased when the checkpoint was taken
    bool revived = false;                     // a replayed dead letter below the floor
    std::optional<std::int64_t> retry_at_us;  // not before (backoff, nack delay)
  };
  struct DeadLetter {
    std::uint64_t sequence = 0;
    std::uint32_t attempts = 0;
    std::int64_t at_us = 0;
    std::string reason;
    std::string id;
    std::string key;
  };

  std::uint64_t floor = 0;  // as StateRecord::floor
  std::string options;      // EncodeSubscriptionOptions
  SequenceRanges settled;   // at or above the floor: acked, filtered out or gone
  std::vector<Entry> entries;
  std::vector<DeadLetter> dead;
};

// The records of `checkpoint`: one kCheckpoint, then its parts. `floor` is set on all of them.
std::vector<StateRecord> EncodeCheckpoint(const StateCheckpoint& checkpoint,
                                          std::size_t max_part_bytes);

// Rebuilds checkpoints from a state log's records, fed in order.
class CheckpointAssembler {
 public:
  enum class Fed {
    kOther,     // not a checkpoint record: the caller applies it
    kConsumed,  // part of a checkpoint still being read
    kComplete,  // the checkpoint is whole: Take() it
  };
  // A record that is not a checkpoint's abandons a checkpoint still being read (a crash cut
  // it short) and counts it in abandoned(); so do a part out of order and a bad part.
  Fed Feed(const StateRecord& record);
  // The completed checkpoint (after kComplete).
  StateCheckpoint Take();
  // True while a checkpoint is begun and not finished (at the end of the log: a torn one).
  bool reading() const { return reading_; }
  std::uint64_t abandoned() const { return abandoned_; }

 private:
  void Abandon();

  StateCheckpoint current_;
  bool reading_ = false;
  std::uint64_t parts_expected_ = 0;
  std::uint64_t parts_read_ = 0;
  std::uint64_t abandoned_ = 0;
};

}  // namespace ferry::bus
