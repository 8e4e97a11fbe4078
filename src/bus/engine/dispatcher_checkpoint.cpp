// Dispatcher: checkpoints of the state log (see dispatcher.hpp, state_checkpoint.hpp).
//
// Why a crash anywhere recovers the same state: the checkpoint describes the state after
// every record before it, and it is written after them. Until its last record is fsynced
// nothing is deleted, and recovery ignores a checkpoint it cannot read whole, so the records
// before it rebuild the state. Once it is fsynced, recovery starts from it whether or not the
// older segments were deleted yet; DeleteSegmentsBefore deletes them on the log's sync thread,
// oldest first, each durably, so no crash leaves a gap in front of the checkpoint.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "bus/engine/dispatcher.hpp"
#include "bus/engine/time_util.hpp"

namespace ferry::bus {
namespace {

// Each checkpoint part is at most this big (or half the state log's record limit): a state of
// many dead letters becomes many records, never one over max_record_bytes.
constexpr std::size_t kCheckpointPartBytes = 64 * 1024;

}  // namespace

StateCheckpoint Dispatcher::Snapshot() const {
  StateCheckpoint cp;
  cp.floor = floor_;
  cp.options = EncodeSubscriptionOptions(options_);
  // Below the cursor, a sequence at or above the floor that is neither in the window nor a dead
  // letter was settled: acked, filtered out, or gone. Recorded as ranges of the gaps.
  std::uint64_t gap_start = floor_;
  auto entry = entries_.lower_bound(floor_);
  auto dead = dead_.lower_bound(floor_);
  for (;;) {
    std::uint64_t held = next_read_;
    if (entry != entries_.end()) held = std::min(held, entry->first);
    if (dead != dead_.end()) held = std::min(held, dead->first);
    if (held >= next_read_) break;
    if (held > gap_start) cp.settled.Insert(gap_start, held - 1);
    gap_start = held + 1;
    if (entry != entries_.end() && entry->first == held) ++entry;
    if (dead != dead_.end() && dead->first == held) ++dead;
  }
  if (next_read_ > gap_start) cp.settled.Insert(gap_start, next_read_ - 1);
  for (const auto& [first, last] : settled_ahead_.ranges()) {
    if (last >= next_read_) cp.settled.Insert(std::max(first, next_read_), last);
  }
  // In the window: what recovery cannot learn from the message itself. A message never
  // delivered needs nothing (its deliver_at is in the message).
  for (const auto& [seq, e] : entries_) {
    if (e.attempt == 0 && !e.revived) continue;
    StateCheckpoint::Entry out{.sequence = seq,
                               .attempt = e.attempt,
                               .nacks = e.nacks,
                               .in_flight = e.in_flight,
                               .revived = e.revived};
    if (!e.in_flight && e.attempt > 0) out.retry_at_us = ToMicros(e.not_before);
    cp.entries.push_back(out);
  }
  // Not read into the window yet: what recovery learned of them.
  for (auto it = recovered_.lower_bound(next_read_); it != recovered_.end(); ++it) {
    const Recovered& r = it->second;
    StateCheckpoint::Entry out{
        .sequence = it->first, .attempt = r.attempt, .nacks = r.nacks, .in_flight = r.in_flight};
    if (r.retry_at) out.retry_at_us = ToMicros(*r.retry_at);
    cp.entries.push_back(out);
  }
  for (const auto& [seq, d] : dead_) {
    cp.dead.push_back({.sequence = seq,
                       .attempts = d.attempts,
                       .at_us = ToMicros(d.at),
                       .reason = d.reason,
                       .id = d.id,
                       .key = d.key});
  }
  return cp;
}

Result<void> Dispatcher::Restore(StateCheckpoint cp, std::map<std::uint64_t, Recovered>& pending,
                                 std::set<std::uint64_t>& revived) {
  auto options = DecodeSubscriptionOptions(cp.options);
  if (!options) return tl::unexpected(options.error());
  options_ = std::move(*options);
  floor_ = cp.floor;
  settled_ahead_ = std::move(cp.settled);
  pending.clear();
  revived.clear();
  for (const StateCheckpoint::Entry& e : cp.entries) {
    Recovered& p = pending[e.sequence];
    p.attempt = e.attempt;
    p.nacks = e.nacks;
    p.in_flight = e.in_flight;
    if (e.retry_at_us) p.retry_at = FromMicros(*e.retry_at_us);
    if (e.revived) revived.insert(e.sequence);
  }
  dead_.clear();
  for (StateCheckpoint::DeadLetter& d : cp.dead) {
    dead_.insert_or_assign(
        d.sequence, DeadInfo{std::move(d.id), std::move(d.key), std::move(d.reason), d.attempts,
                             FromMicros(d.at_us)});
  }
  return Ok();
}

void Dispatcher::MaybeCheckpoint() {
  if (checkpoint_awaiting_fsync_) return;
  const std::uint64_t due = std::max(env_.checkpoint_bytes, 2 * checkpoint_size_);
  if (written_since_checkpoint_ < due) return;
  if (!state_->log().status()) return;
  WriteCheckpoint();
}

void Dispatcher::WriteCheckpoint() {
  Log& log = state_->log();
  // Also when this attempt fails (a full disk): the next one waits for another threshold.
  written_since_checkpoint_ = 0;
  // A fresh segment: once the checkpoint is durable every segment before it can go whole.
  if (auto r = log.Roll(); !r) {
    spdlog::warn("bus: state log {}: no checkpoint: {}", log.options().dir, r.error().message());
    return;
  }
  const std::size_t part_bytes =
      std::min<std::size_t>(kCheckpointPartBytes, log.options().max_record_bytes / 2);
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  for (StateRecord& record : EncodeCheckpoint(Snapshot(), part_bytes)) {
    auto seq = Write(std::move(record));
    // Cut short: recovery ignores the unfinished checkpoint; nothing was deleted.
    if (!seq) return;
    if (first == 0) first = *seq;
    last = *seq;
  }
  checkpoint_size_ = written_since_checkpoint_;
  written_since_checkpoint_ = 0;
  checkpoint_awaiting_fsync_ = true;
  ++stats_.checkpoints;
  // Fsynced, not merely acknowledged: in kInterval mode an acknowledged checkpoint could still
  // be lost to a power cut, and the records it replaces with it.
  state_->WhenDurable(last, [alive = alive_, first](Result<void> r) {
    Dispatcher* self = *alive;
    if (self == nullptr) return;
    self->checkpoint_awaiting_fsync_ = false;
    if (!r) return;  // the log failed closed; the checkpoint may not be on disk
    // Off the bus thread: each unlink waits for a directory fsync.
    self->state_->DeleteSegmentsBefore(
        first, [dir = self->state_->log().options().dir, first](Result<RetentionResult> deleted) {
          if (!deleted) {
            // Left for the next checkpoint to delete; recovery reads past them to this one.
            spdlog::warn("bus: state log {}: deleting segments before checkpoint {}: {}", dir,
                         first, deleted.error().message());
          }
        });
  });
}

}  // namespace ferry::bus
