#include "mesh/atomic_file.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace ferry::mesh {

Result<void> SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Fail(ErrorCode::kIo, fmt::format("{}: {}", dir, std::strerror(errno)));
  const bool ok = ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) return Fail(ErrorCode::kIo, fmt::format("fsync {}: {}", dir, std::strerror(saved)));
  return Ok();
}

Result<void> WriteFileAtomically(const std::string& path, const std::string& bytes, mode_t mode,
                                 bool exclusive) {
  std::string temp = path + ".tmp";
  ::unlink(temp.c_str());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Fail(ErrorCode::kIo, fmt::format("{}: {}", temp, std::strerror(errno)));
  // The umask may have taken bits away, never added any; set exactly `mode`.
  bool ok = ::fchmod(fd, mode) == 0;
  std::size_t done = 0;
  while (ok && done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int saved = errno;
  ::close(fd);
  if (ok && exclusive) {
    // link() fails if the target exists: no window in which another writer could be replaced.
    ok = ::link(temp.c_str(), path.c_str()) == 0;
    saved = errno;
    ::unlink(temp.c_str());
    if (!ok && saved == EEXIST) {
      return Fail(ErrorCode::kAlreadyExists, fmt::format("{} exists", path));
    }
  } else if (ok) {
    ok = ::rename(temp.c_str(), path.c_str()) == 0;
    saved = errno;
  }
  if (!ok) {
    ::unlink(temp.c_str());
    return Fail(ErrorCode::kIo, fmt::format("{}: {}", path, std::strerror(saved)));
  }
  return SyncDirectory(std::filesystem::path(path).parent_path().string());
}

Result<std::string> ReadWholeFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int saved = errno;
    return Fail(saved == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("{}: {}", path, std::strerror(saved)));
  }
  std::string out;
  char buffer[4096];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int saved = errno;
      ::close(fd);
      if (n < 0) return Fail(ErrorCode::kIo, fmt::format("{}: {}", path, std::strerror(saved)));
      return out;
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace ferry::mesh
