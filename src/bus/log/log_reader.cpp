#include "bus/log/log_reader.hpp"

#include "bus/log/log.hpp"

namespace ferry::bus {

LogReader::LogReader(const Log& log, std::uint64_t from)
    : log_(log), next_sequence_(std::max<std::uint64_t>(from, 1)) {}

Result<std::optional<LogRecord>> LogReader::Next() {
  for (;;) {
    std::uint64_t limit = 0;
    std::uint64_t end = 0;
    {
      std::lock_guard lock(log_.mu_);
      limit = log_.options_.durability == Durability::kBatch ? log_.durable_sequence_
                                                             : log_.written_sequence_;
      const auto& segments = log_.segments_;
      if (next_sequence_ > limit || segments.empty()) return std::nullopt;
      if (segment_ && offset_ >= segment_->size()) {
        if (segments.upper_bound(segment_->base_sequence()) == segments.end()) {
          return std::nullopt;  // the active segment: more may come
        }
        // Used up: move on to the next segment (or the oldest one, if retention took it).
        auto it = segments.upper_bound(next_sequence_);
        if (it != segments.begin()) --it;
        if (it->second->base_sequence() <= segment_->base_sequence()) {
          it = segments.upper_bound(segment_->base_sequence());
        }
        segment_ = it->second;
        offset_ = segment_->SeekOffset(next_sequence_);
      } else if (!segment_) {
        auto it = segments.upper_bound(next_sequence_);
        if (it != segments.begin()) --it;
        segment_ = it->second;
        offset_ = segment_->SeekOffset(next_sequence_);
      }
      end = segment_->size();
    }
    // Frames below `end` with sequences up to `limit` were fully written before the lock was
    // released, so they can be read without it.
    while (true) {
      offset_ = segment_->SkipDamage(offset_);
      if (offset_ >= end) break;  // back to the top: this segment may be used up
      std::uint64_t next_offset = 0;
      auto record = segment_->ReadAt(offset_, &next_offset);
      if (!record) return tl::unexpected(record.error());
      if (record->sequence > limit) return std::nullopt;
      offset_ = next_offset;
      if (record->sequence < next_sequence_) continue;  // scanning forward from the index
      next_sequence_ = record->sequence + 1;
      return std::optional<LogRecord>(std::move(*record));
    }
  }
}

std::unique_ptr<LogReader> Log::NewReader(std::uint64_t from) const {
  return std::make_unique<LogReader>(*this, from);
}

Result<std::vector<LogRecord>> Log::Read(std::uint64_t from, std::size_t max_records) const {
  LogReader reader(*this, from);
  std::vector<LogRecord> records;
  while (records.size() < max_records) {
    auto record = reader.Next();
    if (!record) return tl::unexpected(record.error());
    if (!*record) break;
    records.push_back(std::move(**record));
  }
  return records;
}

Result<std::optional<LogRecord>> Log::Get(std::uint64_t sequence) const {
  LogReader reader(*this, sequence);
  auto record = reader.Next();
  if (!record) return tl::unexpected(record.error());
  if (!*record || (*record)->sequence != sequence) return std::optional<LogRecord>();
  return record;
}

}  // namespace ferry::bus
