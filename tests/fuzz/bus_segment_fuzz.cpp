// libFuzzer target: arbitrary bytes as a bus log segment file, through the recovery scanner
// (src/bus/log/segment_scanner.hpp). Checks the scanner's promises, not just "no crash":
// good records come in file order without overlapping, sequences rise strictly, every damaged
// range lies inside the input, and every good record's payload really matches its CRC.
// Seed corpus: tests/fuzz/corpus/bus_segment/ (also replayed by ferry_bus_test).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "bus/log/record_format.hpp"
#include "bus/log/segment_scanner.hpp"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const std::uint64_t base = size > 0 ? data[0] % 4 : 1;  // also a 0 base and off-by-some bases
  std::uint64_t end_of_previous = 0;
  std::uint64_t previous_sequence = 0;
  std::uint64_t count = 0;
  const ferry::bus::SegmentScan scan =
      ferry::bus::ScanSegment(bytes, base, [&](const ferry::bus::ScannedRecord& record) {
        Check(record.offset >= end_of_previous);
        Check(record.header.sequence > previous_sequence && record.header.sequence >= base);
        Check(ferry::bus::PayloadMatches(record.header, record.payload));
        end_of_previous = record.offset + ferry::bus::kRecordHeaderSize + record.header.length;
        Check(end_of_previous <= size);
        previous_sequence = record.header.sequence;
        ++count;
      });
  Check(scan.records == count);
  Check(scan.valid_end == end_of_previous);
  Check(scan.valid_end + scan.tail_bytes <= size);
  Check(scan.tail_bytes == 0 || scan.valid_end + scan.tail_bytes == size);
  // Whatever follows the last good record is either unused zeros or a tail, never both.
  Check(scan.unused_bytes == 0 || scan.tail_bytes == 0);
  Check(scan.unused_bytes == 0 || scan.valid_end + scan.unused_bytes == size);
  Check(bytes.substr(scan.valid_end + scan.tail_bytes).find_first_not_of('\0') ==
        std::string_view::npos);
  for (const auto& damage : scan.damage) Check(damage.offset + damage.length <= size);
  return 0;
}
