// FileSystem on the real disk through POSIX calls (open/write/pread/fdatasync/rename/...).
// Thread safety and errors: as FileSystem. Stateless; one instance may serve every log.
#pragma once

#include <memory>

#include "bus/log/file_system.hpp"

namespace ferry::bus {

class PosixFileSystem final : public FileSystem {
 public:
  // The process-wide instance.
  static std::shared_ptr<PosixFileSystem> Default();

  Result<std::unique_ptr<WritableFile>> OpenWritable(const std::string& path) override;
  Result<std::unique_ptr<RandomAccessFile>> OpenReadable(const std::string& path) override;
  Result<void> SyncDir(const std::string& dir) override;
  Result<void> Rename(const std::string& from, const std::string& to) override;
  Result<void> Remove(const std::string& path) override;
  Result<std::vector<std::string>> List(const std::string& dir) override;
  Result<std::uint64_t> FileSize(const std::string& path) override;
  Result<void> Truncate(const std::string& path, std::uint64_t size) override;
  Result<void> CreateDirs(const std::string& dir) override;
  Result<std::unique_ptr<FileLock>> Lock(const std::string& path) override;
};

}  // namespace ferry::bus
