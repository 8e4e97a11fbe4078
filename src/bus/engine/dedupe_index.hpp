// The de-dup index of one queue or topic: message id → sequence of the original, for ids
// published within the window. Rebuilt from the log on open (Rebuild).
// Threading: bus thread only.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>

#include "bus/message.hpp"
#include "bus/log/log.hpp"

namespace ferry::bus {

class DedupeIndex {
 public:
  explicit DedupeIndex(BusDuration window) : window_(window) {}

  // Indexes every record of `log` published within the window before `now`.
  Result<void> Rebuild(const Log& log, BusTime now);
  // The original's sequence if `id` was published within the window before `now`.
  std::optional<std::uint64_t> Find(const std::string& id, BusTime now);
  void Insert(const std::string& id, std::uint64_t sequence, BusTime published_at);
  // Forgets the ids of sequences `first` and later (records the log dropped on a full disk:
  // a retry must be stored, not answered as a duplicate of nothing).
  void ForgetFrom(std::uint64_t first);
  std::size_t size() const { return ids_.size(); }

 private:
  void Expire(BusTime now);

  BusDuration window_;
  std::unordered_map<std::string, std::uint64_t> ids_;
  struct Entry {
    BusTime time;
    std::string id;
    std::uint64_t sequence;
  };
  std::deque<Entry> by_time_;  // in publish order
};

// The sequence of the first record of `log` stored at or after `time` (by the log's record
// timestamps, which the broker's clock sets), or the next sequence to be written if none.
// Binary search; assumes timestamps do not go backwards by much.
Result<std::uint64_t> FindFirstAtOrAfter(const Log& log, BusTime time);

}  // namespace ferry::bus
