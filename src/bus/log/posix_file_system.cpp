#include "bus/log/posix_file_system.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace ferry::bus {
namespace {

tl::unexpected<Error> ErrnoError(std::string_view what, const std::string& path, int err) {
  const ErrorCode code = err == ENOSPC   ? ErrorCode::kResourceExhausted
                         : err == ENOENT ? ErrorCode::kNotFound
                                         : ErrorCode::kIo;
  return Fail(code, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path, std::uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size), allocated_(size) {}

  ~PosixWritableFile() override {
    if (allocated_ > size_) (void)::ftruncate(fd_.get(), static_cast<off_t>(size_));
  }

  Result<void> Append(std::string_view data) override {
    while (!data.empty()) {
      const ssize_t n = ::pwrite(fd_.get(), data.data(), data.size(), static_cast<off_t>(size_));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("write", path_, errno);
      }
      size_ += static_cast<std::uint64_t>(n);
      data.remove_prefix(static_cast<std::size_t>(n));
    }
    allocated_ = std::max(allocated_, size_);
    return Ok();
  }

  Result<void> Sync() override {
    if (::fdatasync(fd_.get()) != 0) return ErrnoError("fdatasync", path_, errno);
    return Ok();
  }

  Result<void> Truncate(std::uint64_t size) override {
    if (::ftruncate(fd_.get(), static_cast<off_t>(size)) != 0) {
      return ErrnoError("ftruncate", path_, errno);
    }
    size_ = size;
    allocated_ = size;
    return Ok();
  }

  std::uint64_t Size() const override { return size_; }

  Result<void> ZeroAhead(std::uint64_t bytes) override {
    static const std::vector<char> kZeros(64 * 1024);
    const std::uint64_t end = size_ + bytes;
    std::uint64_t at = allocated_;
    while (at < end) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(kZeros.size(), end - at));
      const ssize_t w = ::pwrite(fd_.get(), kZeros.data(), n, static_cast<off_t>(at));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) {
        const int err = errno;
        (void)::ftruncate(fd_.get(), static_cast<off_t>(allocated_));
        return ErrnoError("write", path_, err);
      }
      at += static_cast<std::uint64_t>(w);
    }
    allocated_ = std::max(allocated_, end);
    return Ok();
  }

  std::uint64_t ZeroedAhead() const override { return allocated_ - size_; }

 private:
  Fd fd_;
  std::string path_;
  std::uint64_t size_;       // what appends wrote
  std::uint64_t allocated_;  // the file's length: size_ plus zeros written ahead
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  Result<std::size_t> Read(std::uint64_t offset, std::size_t n, char* out) const override {
    std::size_t done = 0;
    while (done < n) {
      const ssize_t r = ::pread(fd_.get(), out + done, n - done, static_cast<off_t>(offset + done));
      if (r < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("pread", path_, errno);
      }
      if (r == 0) break;
      done += static_cast<std::size_t>(r);
    }
    return done;
  }

  Result<std::uint64_t> Size() const override {
    struct stat st {};
    if (::fstat(fd_.get(), &st) != 0) return ErrnoError("fstat", path_, errno);
    return static_cast<std::uint64_t>(st.st_size);
  }

 private:
  Fd fd_;
  std::string path_;
};

class PosixFileLock final : public FileLock {
 public:
  explicit PosixFileLock(int fd) : fd_(fd) {}  // closing the fd drops the flock

 private:
  Fd fd_;
};

}  // namespace

std::shared_ptr<PosixFileSystem> PosixFileSystem::Default() {
  static const auto kInstance = std::make_shared<PosixFileSystem>();
  return kInstance;
}

Result<std::unique_ptr<WritableFile>> PosixFileSystem::OpenWritable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", path, errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return ErrnoError("fstat", path, err);
  }
  return std::make_unique<PosixWritableFile>(fd, path, static_cast<std::uint64_t>(st.st_size));
}

Result<std::unique_ptr<RandomAccessFile>> PosixFileSystem::OpenReadable(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", path, errno);
  return std::make_unique<PosixRandomAccessFile>(fd, path);
}

Result<void> PosixFileSystem::SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("open", dir, errno);
  Fd guard(fd);
  if (::fsync(fd) != 0) return ErrnoError("fsync", dir, errno);
  return Ok();
}

Result<void> PosixFileSystem::Rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoError("rename", from, errno);
  return Ok();
}

Result<void> PosixFileSystem::Remove(const std::string& path) {
  if (::unlink(path.c_str()) != 0) return ErrnoError("unlink", path, errno);
  return Ok();
}

Result<std::vector<std::string>> PosixFileSystem::List(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoError("opendir", dir, errno);
  std::vector<std::string> names;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
  ::closedir(d);
  return names;
}

Result<std::uint64_t> PosixFileSystem::FileSize(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoError("stat", path, errno);
  return static_cast<std::uint64_t>(st.st_size);
}

Result<void> PosixFileSystem::Truncate(const std::string& path, std::uint64_t size) {
  if (::truncate(path.c_str(), static_cast<off_t>(size)) != 0) {
    return ErrnoError("truncate", path, errno);
  }
  return Ok();
}

Result<std::unique_ptr<FileLock>> PosixFileSystem::Lock(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("open", path, errno);
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("{} is locked by another owner", path));
    }
    return ErrnoError("flock", path, err);
  }
  return std::make_unique<PosixFileLock>(fd);
}

Result<void> PosixFileSystem::CreateDirs(const std::string& dir) {
  // Outermost first, so each new directory's entry is made durable in a parent that exists.
  std::vector<std::filesystem::path> missing;
  std::error_code ec;
  for (std::filesystem::path p = std::filesystem::path(dir).lexically_normal();
       !p.empty() && !std::filesystem::exists(p, ec); p = p.parent_path()) {
    missing.push_back(p);
    if (p == p.parent_path()) break;
  }
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) {
      return ErrnoError("mkdir", it->string(), errno);
    }
    const std::filesystem::path parent = it->has_parent_path() ? it->parent_path() : ".";
    if (auto r = SyncDir(parent.empty() ? std::string(".") : parent.string()); !r) return r;
  }
  return Ok();
}

}  // namespace ferry::bus
