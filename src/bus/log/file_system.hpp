// The file layer under the bus log: just the calls the log makes, so tests can swap the real
// disk (PosixFileSystem) for one that loses unsynced bytes on a simulated crash
// (FaultInjectionFileSystem).
// Thread safety: a FileSystem may be used from any thread. A WritableFile has one writer, but
// Sync() may run on another thread while the writer appends (the log's sync thread does this).
// RandomAccessFile::Read is safe from any number of threads.
// Errors: Result codes. ENOSPC is kResourceExhausted, a missing file kNotFound, any other
// failure kIo with the path and errno text in the message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.hpp"

namespace ferry::bus {

// An open file that only grows at its end, except for an explicit Truncate.
class WritableFile {
 public:
  // Cuts off zeros written by ZeroAhead that no append used (not made durable: a crash may
  // leave them, and the log's recovery reads a tail of zeros as unused space).
  virtual ~WritableFile() = default;

  // Writes all of `data` at the end (Size()), over zeros written ahead if there are any. On
  // failure some prefix may have been written: the caller truncates back to the size it had
  // before (the log does, so a partial record never stays).
  virtual Result<void> Append(std::string_view data) = 0;
  // fdatasync: every byte appended before the call is on stable storage when it returns Ok.
  virtual Result<void> Sync() = 0;
  // Cuts the file to `size` bytes (ftruncate), zeros written ahead included; the next Append
  // goes there.
  virtual Result<void> Truncate(std::uint64_t size) = 0;
  // Bytes in the file as this handle wrote them (size at open plus appends, minus truncates).
  virtual std::uint64_t Size() const = 0;
  // Makes sure the `bytes` after Size() are zeros written to the file, for later appends to
  // overwrite. An fdatasync after such an append flushes data blocks only: the blocks are
  // allocated and the file's size is unchanged, so the file system has no metadata to journal,
  // which makes the fsync markedly faster (PostgreSQL zero-fills its WAL segments for the same
  // reason). Size() does not change. On failure (a full disk) the zeros it wrote are cut off
  // again and the file is as before: only the speed-up is lost.
  virtual Result<void> ZeroAhead(std::uint64_t bytes) = 0;
  // How many bytes after Size() hold zeros written by ZeroAhead.
  virtual std::uint64_t ZeroedAhead() const = 0;
};

// A file read with pread.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to `n` bytes at `offset` into `out`, returning how many were read (short at EOF).
  virtual Result<std::size_t> Read(std::uint64_t offset, std::size_t n, char* out) const = 0;
  virtual Result<std::uint64_t> Size() const = 0;
};

// An exclusive lock on a file (flock); released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Opens `path` for appending, creating it if missing (the caller fsyncs the directory).
  virtual Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) = 0;
  // Makes creations, renames and removals in `dir` durable (fsync on the directory).
  virtual Result<void> SyncDir(const std::string& dir) = 0;
  virtual Result<void> Rename(const std::string& from, const std::string& to) = 0;
  virtual Result<void> Remove(const std::string& path) = 0;
  // Names (not paths) of the entries in `dir`, in no particular order.
  virtual Result<std::vector<std::string>> List(const std::string& dir) = 0;
  virtual Result<std::uint64_t> FileSize(const std::string& path) = 0;
  virtual Result<void> Truncate(const std::string& path, std::uint64_t size) = 0;
  // Creates `dir` and its missing parents, each made durable (its parent fsynced) before the
  // next; Ok if it exists.
  virtual Result<void> CreateDirs(const std::string& dir) = 0;
  // Takes an exclusive lock on `path` (creating the file), without waiting: kFailedPrecondition
  // if another holder (this process or another) has it.
  virtual Result<std::unique_ptr<FileLock>> Lock(const std::string& path) = 0;
};

// Reads a whole file (recovery reads each segment once this way).
Result<std::string> ReadWholeFile(FileSystem& fs, const std::string& path);

// "dir/name", without doubling a trailing slash.
std::string JoinPath(std::string_view dir, std::string_view name);

}  // namespace ferry::bus
