#include "observability/access_log.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ferry::observability {
namespace {

std::uint64_t CountLines(std::string_view text) {
  return static_cast<std::uint64_t>(std::count(text.begin(), text.end(), '\n'));
}

}  // namespace

Result<std::shared_ptr<AccessLogSink>> AccessLogSink::Open(const std::string& path,
                                                           MetricsRegistry& metrics) {
  auto errors = metrics.AddCounter("ferry_access_log_write_errors_total",
                                   "Failed write(2) calls to the access log.");
  if (!errors) return tl::unexpected(errors.error());
  auto dropped = metrics.AddCounter("ferry_access_log_dropped_lines_total",
                                    "Access log lines lost to write errors.");
  if (!dropped) return tl::unexpected(dropped.error());

  int fd = STDOUT_FILENO;
  bool owns_fd = false;
  if (path != "stdout") {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Fail(ErrorCode::kIo, "cannot open access log '" + path + "': " + std::strerror(errno));
    }
    owns_fd = true;
  }
  struct stat st {};
  const bool is_pipe = ::fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode));
  return std::shared_ptr<AccessLogSink>(
      new AccessLogSink(path, fd, owns_fd, is_pipe, (*errors)->Get(), (*dropped)->Get()));
}

AccessLogSink::AccessLogSink(std::string path, int fd, bool owns_fd, bool is_pipe,
                             Counter& write_errors, Counter& dropped_lines)
    : path_(std::move(path)),
      fd_(fd),
      owns_fd_(owns_fd),
      is_pipe_(is_pipe),
      write_errors_(write_errors),
      dropped_lines_(dropped_lines) {}

AccessLogSink::~AccessLogSink() {
  if (owns_fd_) ::close(fd_);
}

bool AccessLogSink::WriteChunk(std::string_view chunk, std::size_t slot) noexcept {
  while (!chunk.empty()) {
    const ssize_t n = ::write(fd_, chunk.data(), chunk.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      write_errors_.Add(slot);
      dropped_lines_.Add(slot, CountLines(chunk));
      return false;
    }
    // A short write (disk nearly full, signal): the rest follows in the next call, which may
    // interleave with another worker's write; a torn line beats a silently lost one.
    chunk.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void AccessLogSink::WriteLines(std::string_view lines, std::size_t slot) noexcept {
  if (!is_pipe_) {
    WriteChunk(lines, slot);
    return;
  }
  // Pipe writes above PIPE_BUF may interleave with other writers: cut at line boundaries.
  while (!lines.empty()) {
    std::size_t end = lines.size();
    if (end > PIPE_BUF) {
      const auto last_newline = lines.rfind('\n', PIPE_BUF - 1);
      // A single line longer than PIPE_BUF goes alone and may be interleaved; nothing better.
      end = last_newline != std::string_view::npos
                ? last_newline + 1
                : std::min(lines.find('\n'), lines.size() - 1) + 1;
    }
    if (!WriteChunk(lines.substr(0, end), slot)) {
      dropped_lines_.Add(slot, CountLines(lines.substr(end)));
      return;
    }
    lines.remove_prefix(end);
  }
}

AccessLogWriter::AccessLogWriter(std::shared_ptr<AccessLogSink> sink, std::size_t worker_id)
    : sink_(std::move(sink)), worker_id_(worker_id) {
  buffer_.reserve(kFlushThreshold + 4096);
}

AccessLogWriter::~AccessLogWriter() { Flush(); }

void AccessLogWriter::Write(const AccessLogEntry& entry) {
  AppendAccessLogLine(entry, buffer_);
  if (buffer_.size() >= kFlushThreshold) Flush();
}

void AccessLogWriter::Flush() noexcept {
  if (buffer_.empty()) return;
  sink_->WriteLines(buffer_, worker_id_);
  buffer_.clear();  // keeps the capacity
}

}  // namespace ferry::observability
