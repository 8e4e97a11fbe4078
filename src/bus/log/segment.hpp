// One segment file of the log: its name (the first sequence it holds, 20 digits, ".seg"), what
// is known about its records, a sparse in-memory index (one entry per `index_interval` bytes)
// and the damaged ranges recovery found in it.
// Thread safety: the metadata is guarded by the owning Log's mutex (the log mutates it as it
// appends; readers consult it under that mutex). ReadAt is a pread and safe from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bus/log/file_system.hpp"
#include "core/result.hpp"

namespace ferry::bus {

// A record as the log hands it back.
struct LogRecord {
  std::uint64_t sequence = 0;
  std::int64_t timestamp_us = 0;
  std::uint32_t flags = 0;
  std::string payload;
};

class Segment {
 public:
  static std::string FileName(std::uint64_t base_sequence);
  // The base sequence of a segment file name, or nullopt for any other name.
  static std::optional<std::uint64_t> ParseFileName(std::string_view name);

  Segment(std::uint64_t base_sequence, std::string path, std::shared_ptr<RandomAccessFile> file,
          std::uint64_t index_interval_bytes);

  // Notes a good record at `offset` whose frame is `frame_bytes` long.
  void AddRecord(std::uint64_t sequence, std::uint64_t offset, std::uint64_t frame_bytes,
                 std::int64_t timestamp_us);
  // Notes damaged bytes that readers step over.
  void AddDamage(std::uint64_t offset, std::uint64_t length);
  // Notes that the file ends at `size` (recovery found bytes past the last record).
  void SetSize(std::uint64_t size) { size_ = size; }

  // Where a scan for `sequence` starts: the indexed record at or before it (or offset 0).
  std::uint64_t SeekOffset(std::uint64_t sequence) const;
  // `offset`, moved past any damaged range that starts there.
  std::uint64_t SkipDamage(std::uint64_t offset) const;

  // Reads and checks the frame at `offset`; sets *next_offset to the byte after it.
  // A frame that fails its checks is kIo (damage that appeared after the log was opened).
  Result<LogRecord> ReadAt(std::uint64_t offset, std::uint64_t* next_offset) const;

  std::uint64_t base_sequence() const { return base_sequence_; }
  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }  // bytes, damage and torn tail included
  std::uint64_t records() const { return records_; }
  std::uint64_t last_sequence() const { return last_sequence_; }  // 0 while empty
  // Sequence the next record appended here would get (recovery: last + 1, or the base).
  std::uint64_t next_sequence() const { return records_ ? last_sequence_ + 1 : base_sequence_; }
  std::int64_t last_timestamp_us() const { return last_timestamp_us_; }  // 0 while empty

 private:
  struct IndexEntry {
    std::uint64_t sequence;
    std::uint64_t offset;
  };
  struct Range {
    std::uint64_t offset;
    std::uint64_t length;
  };

  std::uint64_t base_sequence_;
  std::string path_;
  std::shared_ptr<RandomAccessFile> file_;
  std::uint64_t index_interval_;
  std::uint64_t size_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t last_sequence_ = 0;
  std::int64_t last_timestamp_us_ = 0;
  std::uint64_t last_indexed_offset_ = 0;
  std::vector<IndexEntry> index_;
  std::vector<Range> damage_;
};

}  // namespace ferry::bus
