// A set of log sequences stored as disjoint inclusive ranges, so that long runs (every message
// acked past a stuck floor, every event a subscription's filter skipped) cost one entry, not
// one per sequence. Values only; not thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <optional>

namespace ferry::bus {

class SequenceRanges {
 public:
  // Adds [first, last] (first <= last), merging with what it overlaps or touches.
  void Insert(std::uint64_t first, std::uint64_t last);
  void Insert(std::uint64_t sequence) { Insert(sequence, sequence); }
  // Removes `sequence`; true if it was in the set.
  bool Erase(std::uint64_t sequence);
  // Removes every sequence below `sequence`.
  void EraseBelow(std::uint64_t sequence);
  bool Contains(std::uint64_t sequence) const;
  // The last sequence of the range that starts exactly at `sequence`, if one does.
  std::optional<std::uint64_t> RunFrom(std::uint64_t sequence) const;
  void Clear() { ranges_.clear(); }
  bool empty() const { return ranges_.empty(); }
  // First -> last, in order.
  const std::map<std::uint64_t, std::uint64_t>& ranges() const { return ranges_; }

 private:
  std::map<std::uint64_t, std::uint64_t> ranges_;
};

}  // namespace ferry::bus
