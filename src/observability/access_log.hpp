// The access log: one AccessLogSink per configured destination (a file or stdout), shared by
// all workers, and one AccessLogWriter per worker that buffers whole JSON lines and hands them
// to the sink with one write(2) once 16 KiB have accumulated or on Flush().
//
// Thread safety: the sink is immutable after Open and may be used by every worker at once (the
// file is opened O_APPEND, so each write lands whole at the end; on a pipe, writes are cut at
// line boundaries into pieces of at most PIPE_BUF bytes, which the kernel keeps whole). A
// writer belongs to one worker thread. Ownership: writers share the sink; the descriptor is
// closed when the last one goes (stdout is never closed). Errors: Open returns a Result; write
// failures are counted (ferry_access_log_write_errors_total, and the lost lines in
// ferry_access_log_dropped_lines_total) and the lines dropped, never thrown. Writes block the
// worker: point the log at a file or a pipe that is read promptly. The process must ignore
// SIGPIPE (the runtime does) or a closed stdout pipe kills it.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "observability/access_log_entry.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::observability {

class AccessLogSink {
 public:
  // path: "stdout", or a file path (created 0644 if missing, opened O_APPEND). Registers the
  // access-log counters in `metrics` (idempotent, so reopening on reload is fine). Errors:
  // kIo if the file cannot be opened.
  static Result<std::shared_ptr<AccessLogSink>> Open(const std::string& path,
                                                     MetricsRegistry& metrics);
  ~AccessLogSink();
  AccessLogSink(const AccessLogSink&) = delete;
  AccessLogSink& operator=(const AccessLogSink&) = delete;

  // Writes `lines` (whole lines, each ending in '\n') and counts failures in `slot` (the
  // caller's worker id). Retries EINTR and short writes; gives up on any other error.
  void WriteLines(std::string_view lines, std::size_t slot) noexcept;

  const std::string& path() const { return path_; }

 private:
  AccessLogSink(std::string path, int fd, bool owns_fd, bool is_pipe, Counter& write_errors,
                Counter& dropped_lines);
  // One write(2) loop for a chunk of whole lines; false if it failed (already counted).
  bool WriteChunk(std::string_view chunk, std::size_t slot) noexcept;

  std::string path_;
  int fd_;
  bool owns_fd_;
  bool is_pipe_;
  Counter& write_errors_;
  Counter& dropped_lines_;
};

class AccessLogWriter {
 public:
  // Buffered bytes beyond which Write() hands the buffer to the sink.
  static constexpr std::size_t kFlushThreshold = 16 * 1024;

  // worker_id is this worker's metrics slot.
  AccessLogWriter(std::shared_ptr<AccessLogSink> sink, std::size_t worker_id);
  // Flushes what is still buffered.
  ~AccessLogWriter();
  AccessLogWriter(const AccessLogWriter&) = delete;
  AccessLogWriter& operator=(const AccessLogWriter&) = delete;

  // Renders the entry into the buffer; writes the buffer out once it passes kFlushThreshold.
  void Write(const AccessLogEntry& entry);
  // Writes out whatever is buffered (the worker calls this from a ~100 ms timer and at exit).
  void Flush() noexcept;

  std::size_t buffered_bytes() const { return buffer_.size(); }

 private:
  std::shared_ptr<AccessLogSink> sink_;
  std::size_t worker_id_;
  std::string buffer_;
};

}  // namespace ferry::observability
