// A bus Log as the single-threaded engine uses it: appends from the bus thread, and
// completions ("this sequence is acknowledged", "the watermark moved") delivered back on the
// bus thread through the PostFn, never from inside the call that asked for them.
// Writes are coalesced (LogOptions::coalesce_writes): appends are buffered and the posted
// pump writes them all with one write(2) before it runs the waiters, so the publishes and
// state changes of one event-loop turn share a write. A full disk at that write fails every
// waiter of the records it held (and tells the reject hook); the log stays open.
// Threading: bus thread only, except the log's listener, which only posts.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string_view>

#include "bus/engine/embedded_options.hpp"
#include "bus/log/log.hpp"

namespace ferry::bus {

class DurableLog {
 public:
  using Done = std::function<void(Result<void>)>;

  static Result<std::unique_ptr<DurableLog>> Open(std::shared_ptr<FileSystem> fs,
                                                  LogOptions options, PostFn post);
  ~DurableLog();
  DurableLog(const DurableLog&) = delete;
  DurableLog& operator=(const DurableLog&) = delete;

  Result<std::uint64_t> Append(std::string_view payload, std::uint32_t flags = 0);
  // Writes what is buffered now rather than in the next pump, for a caller that is about to
  // hand out what the records describe (deliveries). Not acknowledged any sooner.
  Result<void> Flush() { return log_->Flush(); }
  // Runs `done` (posted) once `sequence` is acknowledged, or with the log's failure.
  void WhenAcknowledged(std::uint64_t sequence, Done done);
  // Runs `done` (posted) once `sequence` is fsynced, or with the log's failure. The same as
  // WhenAcknowledged in kBatch; in kInterval it waits for the timed fsync, for callers that
  // delete what the record replaces (a state log's checkpoint).
  void WhenDurable(std::uint64_t sequence, Done done);
  // Log::DeleteSegmentsBefore and Log::EnforceRetention on the log's sync thread
  // (Log::RunInBackground), so the bus thread never waits on the unlinks' directory fsyncs;
  // `done` runs posted, with the log's closed error if it closes (or fails closed) first.
  using RetentionDone = std::function<void(Result<RetentionResult>)>;
  void DeleteSegmentsBefore(std::uint64_t sequence, RetentionDone done);
  void EnforceRetention(const RetentionPolicy& policy, std::uint64_t protected_sequence,
                        std::int64_t now_us, RetentionDone done);
  // Called on the bus thread after the acknowledged watermark moved.
  void SetAdvanceHook(std::function<void()> hook) { hook_ = std::move(hook); }
  // Called on the bus thread, inside the call that flushed, when records first..last were
  // dropped for lack of space (their sequences will be given out again): a de-dup index
  // forgets them. Must not append.
  void SetRejectHook(std::function<void(std::uint64_t first, std::uint64_t last)> hook) {
    reject_hook_ = std::move(hook);
  }

  Log& log() { return *log_; }
  const Log& log() const { return *log_; }
  LogDurabilityStats Stats() const;

 private:
  struct Shared;  // what posted tasks may touch: outlives this object if a task is queued

  DurableLog(std::unique_ptr<Log> log, PostFn post);
  void SchedulePump();
  // Runs `work` on the log's sync thread and posts its result to `done`.
  void InBackground(std::function<Result<RetentionResult>(Log&)> work, RetentionDone done);
  void Pump();
  // The log dropped first..: their waiters fail (posted), before the sequences come back.
  void Reject(std::uint64_t first, std::uint64_t last, const Error& error);
  // Runs the waiters of `parked` at or below `watermark`, and with the log's error all of them
  // once it failed.
  static void Release(std::multimap<std::uint64_t, Done>& parked, std::uint64_t watermark,
                      const Result<void>& status);

  std::unique_ptr<Log> log_;
  PostFn post_;
  std::shared_ptr<Shared> shared_;
  std::multimap<std::uint64_t, Done> parked_;          // until acknowledged
  std::multimap<std::uint64_t, Done> parked_durable_;  // until fsynced
  std::uint64_t pumped_ = 0;                           // watermark the hook last saw
  std::function<void()> hook_;
  std::function<void(std::uint64_t, std::uint64_t)> reject_hook_;
};

}  // namespace ferry::bus
