#include "bus/engine/sequence_ranges.hpp"

#include <algorithm>
#include <iterator>

namespace ferry::bus {

void SequenceRanges::Insert(std::uint64_t first, std::uint64_t last) {
  // Start from the range before `first` if it reaches it (or ends right before it).
  auto it = ranges_.upper_bound(first);
  if (it != ranges_.begin()) {
    auto prev = std::prev(it);
    if (prev->second == UINT64_MAX || prev->second + 1 >= first) it = prev;
  }
  // Swallow every range that overlaps or touches [first, last].
  while (it != ranges_.end() && (last == UINT64_MAX || it->first <= last + 1)) {
    first = std::min(first, it->first);
    last = std::max(last, it->second);
    it = ranges_.erase(it);
  }
  ranges_.emplace(first, last);
}

bool SequenceRanges::Erase(std::uint64_t sequence) {
  auto it = ranges_.upper_bound(sequence);
  if (it == ranges_.begin()) return false;
  --it;
  const std::uint64_t first = it->first;
  const std::uint64_t last = it->second;
  if (sequence > last) return false;
  ranges_.erase(it);
  if (first < sequence) ranges_.emplace(first, sequence - 1);
  if (sequence < last) ranges_.emplace(sequence + 1, last);
  return true;
}

void SequenceRanges::EraseBelow(std::uint64_t sequence) {
  while (!ranges_.empty() && ranges_.begin()->first < sequence) {
    const std::uint64_t last = ranges_.begin()->second;
    ranges_.erase(ranges_.begin());
    if (last >= sequence) {
      ranges_.emplace(sequence, last);
      return;
    }
  }
}

bool SequenceRanges::Contains(std::uint64_t sequence) const {
  auto it = ranges_.upper_bound(sequence);
  if (it == ranges_.begin()) return false;
  return std::prev(it)->second >= sequence;
}

std::optional<std::uint64_t> SequenceRanges::RunFrom(std::uint64_t sequence) const {
  auto it = ranges_.find(sequence);
  if (it == ranges_.end()) return std::nullopt;
  return it->second;
}

}  // namespace ferry::bus
