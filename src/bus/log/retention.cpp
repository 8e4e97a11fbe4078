// Log::EnforceRetention and Log::DeleteSegmentsBefore: delete whole segments, oldest first.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "bus/log/log.hpp"

namespace ferry::bus {

Result<RetentionResult> Log::EnforceRetention(const RetentionPolicy& policy,
                                              std::uint64_t protected_sequence,
                                              std::int64_t now_us) {
  RetentionResult result;
  std::vector<std::shared_ptr<Segment>> victims;
  {
    std::lock_guard lock(mu_);
    if (closing_ || failure_) return tl::unexpected(ClosedError());
    if (unlink_error_) return tl::unexpected(*unlink_error_);
    std::uint64_t remaining = total_bytes_;
    const std::int64_t max_age = policy.max_age.count();
    for (auto it = segments_.begin(); it != segments_.end();) {
      const Segment& segment = *it->second;
      if (std::next(it) == segments_.end()) break;  // the active segment stays
      const bool empty = segment.records() == 0;
      const bool too_old = max_age > 0 && segment.last_timestamp_us() < now_us - max_age;
      const bool too_big = policy.max_bytes > 0 && remaining > policy.max_bytes;
      const bool consumed = segment.last_sequence() < protected_sequence;
      if (!empty && !too_old && !too_big && !(policy.delete_consumed && consumed)) break;
      const bool unconsumed = !empty && segment.last_sequence() >= protected_sequence;
      // Only an explicit max_age drops what a consumer still needs; size pressure never does.
      if (unconsumed && !too_old) break;
      if (unconsumed) {
        const std::uint64_t from = std::max(protected_sequence, segment.base_sequence());
        const std::uint64_t dropped =
            std::min<std::uint64_t>(segment.last_sequence() - from + 1, segment.records());
        result.unconsumed_dropped += dropped;
        spdlog::warn("bus log {}: max_age drops {} unconsumed records of segment {}", options_.dir,
                     dropped, segment.path());
      }
      remaining -= segment.size();
      result.bytes_deleted += segment.size();
      result.records_deleted += segment.records();
      ++result.segments_deleted;
      victims.push_back(it->second);
      it = segments_.erase(it);
    }
    total_bytes_ = remaining;
    stats_.segments_deleted += result.segments_deleted;
    stats_.retention_dropped_unconsumed += result.unconsumed_dropped;
  }
  // Oldest first, each unlink made durable before the next (as DeleteSegmentsBefore): unsynced
  // unlinks may reach the disk in any order, and a surviving older segment in front of a
  // deleted one would read as a gap after a crash. Readers still inside a victim keep reading
  // it through their open file.
  for (const auto& segment : victims) {
    if (auto r = RemoveSegmentFile(*segment); !r) return tl::unexpected(r.error());
  }
  return result;
}

Result<RetentionResult> Log::DeleteSegmentsBefore(std::uint64_t sequence) {
  RetentionResult result;
  for (;;) {
    std::shared_ptr<Segment> victim;
    {
      std::lock_guard lock(mu_);
      if (closing_ || failure_) return tl::unexpected(ClosedError());
      if (unlink_error_) return tl::unexpected(*unlink_error_);
      if (segments_.size() < 2) break;  // the active segment stays
      auto oldest = segments_.begin();
      const Segment& segment = *oldest->second;
      const bool below = segment.records() == 0 ? segment.base_sequence() < sequence
                                                : segment.last_sequence() < sequence;
      if (!below) break;
      victim = oldest->second;
      segments_.erase(oldest);
      total_bytes_ -= segment.size();
      ++stats_.segments_deleted;
    }
    ++result.segments_deleted;
    result.records_deleted += victim->records();
    result.bytes_deleted += victim->size();
    if (auto r = RemoveSegmentFile(*victim); !r) return tl::unexpected(r.error());
  }
  return result;
}

Result<void> Log::RemoveSegmentFile(const Segment& segment) {
  // Readers still inside the segment keep reading it through their open file. One directory
  // fsync per unlink: unsynced unlinks may reach the disk in any order, and a surviving older
  // segment in front of a deleted one would read as a gap after a crash.
  std::optional<Error> error;
  if (auto r = fs_->Remove(segment.path()); !r && r.error().code() != ErrorCode::kNotFound) {
    error = r.error();
  } else if (auto d = fs_->SyncDir(options_.dir); !d) {
    error = d.error();
  }
  if (!error) return Ok();
  // The file may still be there: deleting newer ones after it could leave such a gap, so no
  // segment is deleted from now on; the next Open reads this one again.
  std::lock_guard lock(mu_);
  if (!unlink_error_) {
    unlink_error_ =
        Error(error->code(), fmt::format("deleting segments stopped after: {}", error->message()));
    spdlog::warn("bus log {}: {}; no segment is deleted until the log is opened again",
                 options_.dir, error->message());
  }
  return tl::unexpected(*error);
}

}  // namespace ferry::bus
