// The recovery scanner: walks the bytes of one segment file, checks every frame, and finds its
// way past damage by searching for the next record magic whose header checksum, payload CRC
// and sequence all check out. Everything it is given may be garbage (it is fuzzed:
// tests/fuzz/bus_segment_fuzz.cpp). Pure function; thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/log/record_format.hpp"

namespace ferry::bus {

struct ScannedRecord {
  std::uint64_t offset = 0;  // where the frame starts in the segment
  RecordHeader header;
  std::string_view payload;  // points into the scanned bytes
};

// Bytes between two good records that hold no good record.
struct SegmentDamage {
  std::uint64_t offset = 0;  // first damaged byte
  std::uint64_t length = 0;  // bytes skipped up to the next good record
  std::string reason;        // what was wrong with the frame at `offset`
};

struct SegmentScan {
  std::uint64_t records = 0;         // good records found
  std::uint64_t first_sequence = 0;  // of the first good record; 0 when there is none
  std::uint64_t last_sequence = 0;   // of the last good record; 0 when there is none
  std::uint64_t valid_end = 0;       // end of the last good record
  // Zeros after valid_end and nothing else: space the writer zeroed ahead for its appends
  // (WritableFile::ZeroAhead), not damage.
  std::uint64_t unused_bytes = 0;
  // Bytes after valid_end with no good record in them, but not all zeros: a torn write in the
  // last segment (zeros after it included).
  std::uint64_t tail_bytes = 0;
  std::string tail_reason;  // why the frame at valid_end is not good
  // The tail looks like an interrupted write rather than rot: its last non-zero byte comes
  // before the end of the frame at valid_end (a frame cut short, and maybe zeros after it).
  bool tail_torn = false;
  std::vector<SegmentDamage> damage;  // damage with good records after it, in file order
};

// Scans `data`, a segment whose first record should have sequence `base_sequence`; calls
// `visit` for each good record in order. Sequences must rise strictly; a frame whose sequence
// is below the next expected one counts as damage (say, a frame copied inside a payload).
SegmentScan ScanSegment(std::string_view data, std::uint64_t base_sequence,
                        const std::function<void(const ScannedRecord&)>& visit);

}  // namespace ferry::bus
