#include "tls/private_key_file.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

namespace ferry::tls {

Result<void> CheckPrivateKeyFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return Fail(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                fmt::format("private key {}: {}", path, std::strerror(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("private key {}: not a regular file", path));
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Fail(ErrorCode::kFailedPrecondition,
                fmt::format("private key {} is accessible by group or others (mode {:03o}); "
                            "allow only its owner: chmod 600 {}",
                            path, st.st_mode & 0777, path));
  }
  return Ok();
}

}  // namespace ferry::tls
