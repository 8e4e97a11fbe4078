// Reads a log's acknowledged records in sequence order from a starting sequence, across
// segments, stepping over damage recovery reported. Sees records appended after it was made.
// Thread safety: one reader per thread; any number of readers alongside the log's writer and
// retention (a segment deleted under a reader stays readable through its open file). The log
// must outlive its readers.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "bus/log/segment.hpp"
#include "core/result.hpp"

namespace ferry::bus {

class Log;

class LogReader {
 public:
  LogReader(const Log& log, std::uint64_t from);

  // The next acknowledged record, or nullopt when there is none yet. If the records at the
  // reader's position were deleted by retention it moves on to the oldest one left.
  // kIo if a frame fails its checks (damage that appeared after the log was opened).
  Result<std::optional<LogRecord>> Next();

  // The sequence the reader looks for next.
  std::uint64_t position() const { return next_sequence_; }

 private:
  const Log& log_;
  std::uint64_t next_sequence_;
  std::shared_ptr<const Segment> segment_;
  std::uint64_t offset_ = 0;
};

}  // namespace ferry::bus
