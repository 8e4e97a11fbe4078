#include "bus/log/segment.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>

#include "bus/log/record_format.hpp"

namespace ferry::bus {
namespace {

constexpr std::string_view kSuffix = ".seg";
constexpr std::size_t kDigits = 20;

}  // namespace

std::string Segment::FileName(std::uint64_t base_sequence) {
  return fmt::format("{:020d}{}", base_sequence, kSuffix);
}

std::optional<std::uint64_t> Segment::ParseFileName(std::string_view name) {
  if (name.size() != kDigits + kSuffix.size() || !name.ends_with(kSuffix)) return std::nullopt;
  std::uint64_t value = 0;
  const char* end = name.data() + kDigits;
  const auto [ptr, ec] = std::from_chars(name.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

Segment::Segment(std::uint64_t base_sequence, std::string path,
                 std::shared_ptr<RandomAccessFile> file, std::uint64_t index_interval_bytes)
    : base_sequence_(base_sequence),
      path_(std::move(path)),
      file_(std::move(file)),
      index_interval_(std::max<std::uint64_t>(index_interval_bytes, 1)) {}

void Segment::AddRecord(std::uint64_t sequence, std::uint64_t offset, std::uint64_t frame_bytes,
                        std::int64_t timestamp_us) {
  if (index_.empty() || offset - last_indexed_offset_ >= index_interval_) {
    index_.push_back({sequence, offset});
    last_indexed_offset_ = offset;
  }
  ++records_;
  last_sequence_ = sequence;
  last_timestamp_us_ = timestamp_us;
  size_ = std::max(size_, offset + frame_bytes);
}

void Segment::AddDamage(std::uint64_t offset, std::uint64_t length) {
  damage_.push_back({offset, length});
  size_ = std::max(size_, offset + length);
}

std::uint64_t Segment::SeekOffset(std::uint64_t sequence) const {
  const auto it = std::upper_bound(
      index_.begin(), index_.end(), sequence,
      [](std::uint64_t seq, const IndexEntry& entry) { return seq < entry.sequence; });
  return it == index_.begin() ? 0 : std::prev(it)->offset;
}

std::uint64_t Segment::SkipDamage(std::uint64_t offset) const {
  for (const Range& range : damage_) {
    if (range.offset == offset) offset += range.length;
  }
  return offset;
}

Result<LogRecord> Segment::ReadAt(std::uint64_t offset, std::uint64_t* next_offset) const {
  char header_bytes[kRecordHeaderSize];
  auto n = file_->Read(offset, sizeof(header_bytes), header_bytes);
  if (!n) return tl::unexpected(n.error());
  RecordHeader header;
  const HeaderStatus status =
      *n == sizeof(header_bytes)
          ? DecodeHeader(std::string_view(header_bytes, sizeof(header_bytes)), &header)
          : HeaderStatus::kBadMagic;
  if (status != HeaderStatus::kOk) {
    return Fail(ErrorCode::kIo,
                fmt::format("segment {} offset {}: {}", path_, offset, Describe(status)));
  }
  LogRecord record;
  record.payload.resize(header.length);
  n = file_->Read(offset + kRecordHeaderSize, header.length, record.payload.data());
  if (!n) return tl::unexpected(n.error());
  if (*n != header.length || !PayloadMatches(header, record.payload)) {
    return Fail(ErrorCode::kIo,
                fmt::format("segment {} offset {}: payload checksum mismatch", path_, offset));
  }
  record.sequence = header.sequence;
  record.timestamp_us = header.timestamp_us;
  record.flags = header.flags;
  *next_offset = offset + kRecordHeaderSize + header.length;
  return record;
}

}  // namespace ferry::bus
