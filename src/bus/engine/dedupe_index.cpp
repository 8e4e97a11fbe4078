#include "bus/engine/dedupe_index.hpp"

#include <spdlog/spdlog.h>

#include "bus/engine/message_codec.hpp"
#include "bus/engine/time_util.hpp"
#include "bus/log/log_reader.hpp"

namespace ferry::bus {

Result<void> DedupeIndex::Rebuild(const Log& log, BusTime now) {
  auto from = FindFirstAtOrAfter(log, now - window_);
  if (!from) return tl::unexpected(from.error());
  auto reader = log.NewReader(*from);
  for (;;) {
    auto record = reader->Next();
    if (!record) return tl::unexpected(record.error());
    if (!*record) break;
    if (((*record)->flags & kGeneratedIdFlag) != 0) continue;
    auto message = DecodeMessage((*record)->payload);
    if (!message) {
      spdlog::warn("bus: {} sequence {}: {}", log.options().dir, (*record)->sequence,
                   message.error().message());
      continue;
    }
    Insert(message->id, (*record)->sequence, FromMicros((*record)->timestamp_us));
  }
  Expire(now);
  return Ok();
}

std::optional<std::uint64_t> DedupeIndex::Find(const std::string& id, BusTime now) {
  Expire(now);
  auto it = ids_.find(id);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

void DedupeIndex::Insert(const std::string& id, std::uint64_t sequence, BusTime published_at) {
  ids_[id] = sequence;
  by_time_.push_back({published_at, id, sequence});
}

void DedupeIndex::ForgetFrom(std::uint64_t first) {
  // Inserted in sequence order, so they are the newest entries.
  while (!by_time_.empty() && by_time_.back().sequence >= first) {
    const Entry& newest = by_time_.back();
    auto it = ids_.find(newest.id);
    if (it != ids_.end() && it->second == newest.sequence) ids_.erase(it);
    by_time_.pop_back();
  }
}

void DedupeIndex::Expire(BusTime now) {
  while (!by_time_.empty() && by_time_.front().time + window_ <= now) {
    const Entry& oldest = by_time_.front();
    auto it = ids_.find(oldest.id);
    if (it != ids_.end() && it->second == oldest.sequence) ids_.erase(it);
    by_time_.pop_front();
  }
}

Result<std::uint64_t> FindFirstAtOrAfter(const Log& log, BusTime time) {
  const std::int64_t target = ToMicros(time);
  // The timestamp of the first readable record at or after `seq`, and its sequence.
  auto probe = [&](std::uint64_t seq) -> Result<std::optional<LogRecord>> {
    auto reader = log.NewReader(seq);
    return reader->Next();
  };
  std::uint64_t lo = log.first_sequence();
  std::uint64_t hi = log.acknowledged_sequence() + 1;  // answer in [lo, hi]
  while (lo < hi) {
    const std::uint64_t mid = lo + (hi - lo) / 2;
    auto record = probe(mid);
    if (!record) return tl::unexpected(record.error());
    if (!*record) {
      hi = mid;
    } else if ((*record)->timestamp_us >= target) {
      hi = mid;
    } else {
      lo = (*record)->sequence + 1;
    }
  }
  return lo;
}

}  // namespace ferry::bus
