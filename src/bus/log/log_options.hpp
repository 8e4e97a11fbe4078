// Options, reports and counters of the bus log (see log.hpp). Plain values.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/retention_policy.hpp"

namespace ferry::bus {

// An append that failed on a full disk (ENOSPC) answers kNoSpace with a message starting with
// this (the code tells it apart; the message is for people).
inline constexpr std::string_view kNoSpaceMessage = "no space left on device";
// An append that would take the log past max_total_bytes answers kFull with a message
// starting with this.
inline constexpr std::string_view kLogFullMessage = "full:";

enum class Durability {
  // Group commit (the default): an append is acknowledged only once an fsync that covers it has
  // returned. Appends that arrive while an fsync runs share the next one; nothing waits on a
  // timer. Costs one fsync per batch; loses nothing acknowledged on power loss.
  kBatch,
  // An append is acknowledged once written to the page cache; fsync runs every sync_interval.
  // Faster, and a power loss loses up to one interval of acknowledged records (what NATS
  // JetStream does by default). A process crash (kill -9) loses nothing.
  kInterval,
};

// One successful group commit (fsync round), as LogOptions::on_sync_round reports it.
struct SyncRoundInfo {
  std::uint64_t records = 0;  // records it made durable (0: only files or the directory)
  std::chrono::microseconds duration{0};  // the fsyncs of the round, together
};

struct LogOptions {
  std::string dir;  // the log's own directory; created if missing
  Durability durability = Durability::kBatch;
  // kInterval only: time between fsyncs. Shorter loses less on power loss, costs more fsyncs.
  std::chrono::milliseconds sync_interval{1000};
  // A segment is closed and a new one started once the next record would take it past this.
  // Retention deletes whole segments, so this is also its granularity. Default 64 MiB.
  std::uint64_t segment_bytes = 64u << 20;
  // Zeros are written ahead of the records in the active segment (WritableFile::ZeroAhead),
  // so that an fsync flushes data only, with no file-size change or block allocation to
  // journal; in steps that grow with the segment from 64 KiB up to this (and never past
  // segment_bytes). 0 turns it off. Default 1 MiB.
  std::uint64_t zero_ahead_bytes = 1u << 20;
  // Largest payload accepted; larger appends fail with kResourceExhausted. Default 1 MiB.
  std::uint32_t max_record_bytes = 1u << 20;
  // Appends that would take the log's bytes on disk past this fail with kFull.
  // 0 (the default) means no limit. Retention is what frees space; see EnforceRetention.
  std::uint64_t max_total_bytes = 0;
  // One sparse-index entry per this many bytes of segment: lookups by sequence scan at most
  // about this much. Default 4 KiB (~16 bytes of memory per 4 KiB of log).
  std::uint64_t index_interval_bytes = 4096;
  // Source of record timestamps (microseconds since the Unix epoch); default the system clock.
  // Tests pass a fake one for retention by age.
  std::function<std::int64_t()> clock_us;
  // Called after each successful fsync round, on the log's sync thread, without the log's
  // lock: must not block or call Close.
  std::function<void(const SyncRoundInfo&)> on_sync_round;
  // Off (the default): Append writes its record before it returns. On: appends are kept in
  // memory and written together, with one write, by the next Flush (or when kMaxBufferedBytes
  // have gathered, or the segment rolls). A buffered record is not written, so neither
  // acknowledged nor readable, and a crash loses it: its owner must Flush before it tells
  // anyone the record is stored. The bus engine flushes once per event-loop turn, so the
  // publishes of one turn cost one write(2) (see Log::Flush for a full disk).
  bool coalesce_writes = false;
};

// One piece of damage recovery found.
struct CorruptionReport {
  enum class Action {
    kSkipped,    // damage between good records; readers step over it
    kTruncated,  // a torn tail of the last segment, cut off
  };
  std::string segment;       // path of the segment file
  std::uint64_t offset = 0;  // first damaged byte in that file
  std::uint64_t length = 0;  // damaged bytes
  std::string reason;        // what was wrong with the frame at `offset`
  Action action = Action::kSkipped;
};

// What Log::Open found.
struct RecoveryReport {
  std::uint64_t segments = 0;                 // segment files read
  std::uint64_t records = 0;                  // good records found
  std::uint64_t truncated_bytes = 0;          // torn tail bytes cut from the last segment
  std::vector<CorruptionReport> corruptions;  // every damaged range, in log order
};

// Counters since Open; one for every graceful-failure path.
struct LogStats {
  std::uint64_t appends = 0;             // records appended
  std::uint64_t appended_bytes = 0;      // frame bytes appended
  std::uint64_t sync_rounds = 0;         // group commits (fsync rounds) that succeeded
  std::uint64_t synced_records = 0;      // records those rounds made durable
  std::uint64_t max_sync_batch = 0;      // most records one round made durable
  std::uint64_t sync_micros = 0;         // time spent in successful rounds (fsyncs included)
  std::uint64_t sync_errors = 0;         // failed fsyncs (the log then fails closed)
  std::uint64_t write_errors = 0;        // failed writes other than ENOSPC (fails closed)
  std::uint64_t no_space_errors = 0;     // ENOSPC on append (rolled back; log stays open)
  std::uint64_t rejected_too_large = 0;  // payloads over max_record_bytes
  std::uint64_t rejected_full = 0;       // appends over max_total_bytes
  std::uint64_t segments_created = 0;
  std::uint64_t segments_deleted = 0;              // by retention or DeleteSegmentsBefore
  std::uint64_t retention_dropped_unconsumed = 0;  // records at or past the protected sequence
                                                   // dropped because max_age said so
};

struct RetentionResult {
  std::uint64_t segments_deleted = 0;
  std::uint64_t records_deleted = 0;
  std::uint64_t bytes_deleted = 0;
  std::uint64_t unconsumed_dropped = 0;  // records at or past the protected sequence
};

}  // namespace ferry::bus
