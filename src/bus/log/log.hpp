// The embedded bus log: one segmented, append-only, checksummed log per queue or topic.
//
// Threading. A log has one owner, the thread (or strand) of its queue or topic, which opens,
// closes and runs retention. Append is also safe from several threads at once (appends are
// serialized by an internal mutex held only for the write into the page cache), so producers
// on different workers need no hop. fsync never runs on the caller's thread: each log has a
// sync thread that does group commit (kBatch) or the timed fsync (kInterval). Readers
// (LogReader) may run on any thread, alongside appends and retention.
//
// Acknowledgement. Append returns the record's sequence once it is written (or, with
// LogOptions::coalesce_writes, buffered: then it is written by the next Flush). It is
// acknowledged once durable (kBatch) or at once (kInterval): the AckCallback of Append, the
// DurableListener (the durable watermark after each fsync) and WaitDurable report that.
// Callbacks run on the sync thread and must not block or call Close; an event loop posts
// them to itself.
//
// Errors. After a failed fsync or write the log fails closed: the fsync is never retried, and
// every later Append, ack and WaitDurable is kIo. ENOSPC is kNoSpace and rolls the partial
// write back; the log stays open (buffered records the write held are dropped and reported to
// the RejectListener). A record over max_record_bytes is kResourceExhausted, one past
// max_total_bytes kFull.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "bus/log/file_system.hpp"
#include "bus/log/log_options.hpp"
#include "bus/log/segment.hpp"
#include "core/result.hpp"

namespace ferry::bus {

class LogReader;

class Log {
 public:
  // Called once with the record's sequence when it is acknowledged, or with the error that
  // means it never will be.
  using AckCallback = std::function<void(Result<std::uint64_t>)>;
  // Called after each fsync round with the new durable watermark (every sequence up to it is
  // on disk), or once with the error that failed the log closed.
  using DurableListener = std::function<void(std::uint64_t durable, const Result<void>& status)>;
  // Called when buffered records (coalesce_writes) could not be written for lack of space:
  // sequences first..last are dropped and will be given out again. Runs on the thread whose
  // call flushed, without the log's lock, before that call returns (see Flush).
  using RejectListener =
      std::function<void(std::uint64_t first, std::uint64_t last, const Error& error)>;

  // With coalesce_writes, Append flushes by itself once this many bytes are buffered.
  static constexpr std::size_t kMaxBufferedBytes = 256 * 1024;

  // Opens (creating if needed) the log in options.dir and recovers it: every segment is
  // scanned, a torn tail of the last one is cut off, damage elsewhere is reported (see
  // recovery_report()) and skipped. The directory is locked (file LOCK): a second Open of it,
  // in this process or another, is kFailedPrecondition until this log is closed. `fs` must
  // outlive the log.
  static Result<std::unique_ptr<Log>> Open(std::shared_ptr<FileSystem> fs, LogOptions options);

  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;
  ~Log();  // Close()

  // Appends a record; returns its sequence. Not yet acknowledged in kBatch mode, nor while
  // buffered (coalesce_writes).
  Result<std::uint64_t> Append(std::string_view payload, std::uint32_t flags = 0);
  // Appends a record and calls `on_ack` once it is acknowledged: on the sync thread after the
  // fsync (kBatch), or once written (kInterval: before Append returns, or in the Flush that
  // writes it). Not called if Append itself fails; called with the error if the record is
  // rejected at its flush.
  Result<std::uint64_t> Append(std::string_view payload, std::uint32_t flags, AckCallback on_ack);
  // Writes the buffered records (coalesce_writes; without it there never are any) with one
  // write. A full disk (ENOSPC) drops them all again: the file is cut back to where they
  // began, their sequences are given out anew, the RejectListener and their acks hear of it,
  // and the result is kNoSpace (kNoSpaceMessage). Any other error fails the log
  // closed. Sync, WaitDurable, Roll and Close flush first.
  Result<void> Flush();
  // Blocks until `sequence` is durable (in both modes). Not for event-loop threads.
  Result<void> WaitDurable(std::uint64_t sequence);
  // Starts an fsync round now (kInterval does not wait for its timer) and waits for it.
  Result<void> Sync();
  // Replaces the listener; it is not called for rounds that finished before.
  void SetDurableListener(DurableListener listener);
  void SetRejectListener(RejectListener listener);
  // Syncs what was written, stops the sync thread and fails every later call. Idempotent.
  Result<void> Close();

  // Runs retention (see RetentionPolicy): deletes whole segments, oldest first, and fsyncs the
  // directory. `protected_sequence` is the lowest sequence some consumer still needs (lowest
  // unacknowledged or unread); `now_us` the current time in the clock of options.clock_us.
  Result<RetentionResult> EnforceRetention(const RetentionPolicy& policy,
                                           std::uint64_t protected_sequence, std::int64_t now_us);

  // Starts a new segment now (nothing happens if the active one is still empty), so the
  // records appended next can outlive everything before them: a compacting caller (the bus
  // state logs) rolls, writes its checkpoint, then deletes the segments below it.
  Result<void> Roll();
  // Deletes the whole segments whose every record is below `sequence`, oldest first; never the
  // active segment. Each unlink is made durable (directory fsync) before the next, so a crash
  // midway leaves a log without a gap (recovery would take a gap for lost records and move
  // the segments after it aside). The caller must have made what replaces them durable first.
  // After a failed unlink (or its directory fsync) nothing more is deleted by this or by
  // EnforceRetention until the log is opened again: each returns that error.
  Result<RetentionResult> DeleteSegmentsBefore(std::uint64_t sequence);
  // Runs `task` on the sync thread, between its fsync rounds, after the tasks given before it:
  // for work that waits on the disk and must not hold up the caller, such as
  // DeleteSegmentsBefore or EnforceRetention (each unlink waits for a directory fsync). In
  // kInterval a task neither brings the timed fsync forward nor puts it off. A task runs
  // exactly once: with Ok on the sync thread, or, when a close or the log failing closed comes
  // first, with the log's closed error (on the thread that closes, fails it, or calls this).
  // One under way finds the log closing: DeleteSegmentsBefore and EnforceRetention then return
  // an error. `task` must not call Close.
  using BackgroundTask = std::function<void(Result<void> ready)>;
  void RunInBackground(BackgroundTask task);

  // A reader positioned at the first record with sequence >= `from`.
  std::unique_ptr<LogReader> NewReader(std::uint64_t from) const;
  // Up to `max_records` records from `from` on (only acknowledged ones).
  Result<std::vector<LogRecord>> Read(std::uint64_t from, std::size_t max_records) const;
  // The record with this sequence, or nullopt if it is gone, damaged or not acknowledged.
  Result<std::optional<LogRecord>> Get(std::uint64_t sequence) const;

  std::uint64_t first_sequence() const;    // lowest sequence stored (next to be written if none)
  std::uint64_t last_sequence() const;     // last sequence appended, buffered ones too (0: none)
  std::uint64_t durable_sequence() const;  // every sequence up to this is fsynced
  std::uint64_t acknowledged_sequence() const;  // durable (kBatch) or written (kInterval)
  std::uint64_t total_bytes() const;            // bytes of all segment files
  std::size_t segment_count() const;
  Result<void> status() const;  // the error that failed the log closed, if any
  const RecoveryReport& recovery_report() const { return recovery_; }
  LogStats stats() const;
  const LogOptions& options() const { return options_; }

 private:
  friend class LogReader;

  Log(std::shared_ptr<FileSystem> fs, LogOptions options);
  Result<void> Recover();  // log_recovery.cpp
  // A flush's outcome that is delivered without the lock (DeliverFlushed).
  struct Flushed {
    std::vector<std::pair<std::uint64_t, AckCallback>> acks;  // kInterval: now written
    std::uint64_t rejected_first = 0;  // ENOSPC: first..last dropped (0: none)
    std::uint64_t rejected_last = 0;
    std::optional<Error> rejection;
    std::vector<AckCallback> rejected_acks;
    RejectListener listener;
  };
  Result<void> FlushLocked(Flushed& out);
  void DeliverFlushed(Flushed& out);
  Result<void> RollLocked();            // starts a new segment at next_sequence_
  void FailLocked(const Error& error);  // fails the log closed
  bool HasSyncWorkLocked() const;
  void SyncLoop();  // the sync thread
  void SyncRound(std::unique_lock<std::mutex>& lock);
  // Runs the tasks of RunInBackground queued so far (sync thread).
  void RunBackgroundTasks(std::unique_lock<std::mutex>& lock);
  // Gives the tasks queued so far the closed error instead (closing, or failed closed).
  void DropBackgroundTasks(std::unique_lock<std::mutex>& lock);
  // Unlinks a segment taken out of segments_ and fsyncs the directory; a failure sets
  // unlink_error_.
  Result<void> RemoveSegmentFile(const Segment& segment);
  void DeliverFailure(std::unique_lock<std::mutex>& lock);
  Error ClosedError() const;

  const std::shared_ptr<FileSystem> fs_;
  const LogOptions options_;
  std::unique_ptr<FileLock> dir_lock_;  // one Log per directory, across processes too
  RecoveryReport recovery_;

  mutable std::mutex mu_;
  std::condition_variable sync_cv_;     // wakes the sync thread
  std::condition_variable durable_cv_;  // wakes WaitDurable and Sync callers
  std::map<std::uint64_t, std::shared_ptr<Segment>> segments_;  // by base sequence
  std::shared_ptr<WritableFile> active_;  // the last segment, open for appending
  std::vector<std::shared_ptr<WritableFile>> unsynced_closed_;  // rolled away, not yet fsynced
  bool dir_dirty_ = false;  // a segment was created since the last dir fsync
  std::uint64_t next_sequence_ = 1;
  std::uint64_t written_sequence_ = 0;  // last record fully written
  std::uint64_t durable_sequence_ = 0;  // last record covered by a finished fsync round
  std::uint64_t total_bytes_ = 0;
  bool sync_requested_ = false;
  std::deque<BackgroundTask> background_;  // RunInBackground's, not yet run
  // Set when an unlink or its directory fsync failed: from then on DeleteSegmentsBefore and
  // EnforceRetention delete nothing (they return it), so no newer file goes while an older one
  // may stay. A new Open starts afresh.
  std::optional<Error> unlink_error_;
  bool closing_ = false;
  bool closed_ = false;
  std::optional<Error> failure_;    // set once: the log has failed closed
  bool failure_delivered_ = false;  // pending acks and the listener were told
  std::deque<std::pair<std::uint64_t, AckCallback>> pending_acks_;  // kBatch, by sequence
  DurableListener durable_listener_;
  LogStats stats_;
  // Appended, not yet written (coalesce_writes): the frames back to back, and each record's
  // place in them. Without coalesce_writes they hold one record, only inside Append.
  struct Buffered {
    std::uint64_t sequence;
    std::uint64_t offset;  // in the active segment
    std::uint64_t frame_bytes;
    std::int64_t timestamp_us;
  };
  std::string buffer_;
  std::vector<Buffered> buffered_;
  std::vector<std::pair<std::uint64_t, AckCallback>> buffered_acks_;
  RejectListener reject_listener_;
  std::thread sync_thread_;
};

}  // namespace ferry::bus
