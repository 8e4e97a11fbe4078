#include "bus/log/segment_scanner.hpp"

#include <cstring>

namespace ferry::bus {
namespace {

// Why the frame at `pos` is not a good record, or nullptr when it is (then `out` is filled).
// `out->header.length` is 0 unless the header was good.
const char* CheckFrame(std::string_view data, std::size_t pos, std::uint64_t min_sequence,
                       ScannedRecord* out) {
  out->header.length = 0;
  if (data.size() - pos < kRecordHeaderSize) return "truncated header";
  const HeaderStatus status = DecodeHeader(data.substr(pos, kRecordHeaderSize), &out->header);
  if (status != HeaderStatus::kOk) out->header.length = 0;
  switch (status) {
    case HeaderStatus::kOk:
      break;
    case HeaderStatus::kBadMagic:
      return "no record magic";
    case HeaderStatus::kBadChecksum:
      return "header checksum mismatch";
    case HeaderStatus::kBadLength:
      return "record length over the frame limit";
  }
  const std::size_t body = pos + kRecordHeaderSize;
  if (data.size() - body < out->header.length) return "truncated payload";
  out->payload = data.substr(body, out->header.length);
  if (!PayloadMatches(out->header, out->payload)) return "payload checksum mismatch";
  if (out->header.sequence < min_sequence || out->header.sequence == 0) {
    return "sequence number out of order";
  }
  out->offset = pos;
  return nullptr;
}

// The first good frame at or after `from`, or npos.
std::size_t FindNextGood(std::string_view data, std::size_t from, std::uint64_t min_sequence,
                         ScannedRecord* out) {
  while (from < data.size()) {
    const void* hit = std::memchr(data.data() + from, kRecordMagic[0], data.size() - from);
    if (hit == nullptr) return std::string_view::npos;
    const auto pos = static_cast<std::size_t>(static_cast<const char*>(hit) - data.data());
    if (CheckFrame(data, pos, min_sequence, out) == nullptr) return pos;
    from = pos + 1;
  }
  return std::string_view::npos;
}

}  // namespace

SegmentScan ScanSegment(std::string_view data, std::uint64_t base_sequence,
                        const std::function<void(const ScannedRecord&)>& visit) {
  SegmentScan scan;
  std::uint64_t min_sequence = base_sequence;
  std::size_t pos = 0;
  while (pos < data.size()) {
    ScannedRecord record;
    const char* reason = CheckFrame(data, pos, min_sequence, &record);
    if (reason != nullptr) {
      const std::uint64_t frame_end = pos + kRecordHeaderSize + record.header.length;
      const std::size_t next = FindNextGood(data, pos + 1, min_sequence, &record);
      if (next == std::string_view::npos) {
        const std::size_t last_nonzero = data.find_last_not_of('\0');
        if (last_nonzero == std::string_view::npos || last_nonzero < pos) {
          scan.unused_bytes = data.size() - pos;
          break;
        }
        scan.tail_bytes = data.size() - pos;
        scan.tail_reason = reason;
        scan.tail_torn = last_nonzero + 1 < frame_end;
        break;
      }
      scan.damage.push_back({pos, next - pos, reason});
      pos = next;
    }
    if (scan.records++ == 0) scan.first_sequence = record.header.sequence;
    scan.last_sequence = record.header.sequence;
    min_sequence = record.header.sequence + 1;
    pos += kRecordHeaderSize + record.header.length;
    scan.valid_end = pos;
    if (visit) visit(record);
  }
  return scan;
}

}  // namespace ferry::bus
