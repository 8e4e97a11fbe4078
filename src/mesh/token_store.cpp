#include "mesh/token_store.hpp"

#include <dirent.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#include "mesh/atomic_file.hpp"
#include "mesh/spiffe.hpp"

namespace ferry::mesh {
namespace {

constexpr std::size_t kTokenBytes = 32;
constexpr std::size_t kTokenChars = 43;  // base64url of 32 bytes, unpadded
constexpr Duration kMaxTokenTtl = std::chrono::hours(24 * 365);

std::string Base64Url(const unsigned char* bytes, std::size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes, static_cast<int>(size));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

bool LooksLikeToken(std::string_view token) {
  if (token.size() != kTokenChars) return false;
  for (char c : token) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_Digest(text.data(), text.size(), digest, &size, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::int64_t UnixSeconds(TokenStore::TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

struct TokenRecord {
  std::string service;
  std::int64_t expires = 0;  // unix seconds
};

// "service NAME\nexpires SECONDS\n"
std::optional<TokenRecord> ParseRecord(std::string_view text) {
  TokenRecord record;
  bool have_expiry = false;
  while (!text.empty()) {
    const auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    if (line.starts_with("service ")) {
      record.service = std::string(line.substr(8));
    } else if (line.starts_with("expires ")) {
      line.remove_prefix(8);
      auto [ptr, ec] = std::from_chars(line.data(), line.data() + line.size(), record.expires);
      have_expiry = ec == std::errc() && ptr == line.data() + line.size();
    }
  }
  if (record.service.empty() || !have_expiry) return std::nullopt;
  return record;
}

// Deletes `path` and makes that durable. kNotFound when someone else deleted it first.
Result<void> RemoveDurably(const std::string& path, const std::string& dir) {
  if (::unlink(path.c_str()) != 0) {
    const int saved = errno;
    if (saved == ENOENT) return Fail(ErrorCode::kNotFound, "the token is unknown or spent");
    return Fail(ErrorCode::kIo, fmt::format("{}: {}", path, std::strerror(saved)));
  }
  return SyncDirectory(dir);
}

}  // namespace

TokenStore::TokenStore(std::string ca_dir)
    : dir_((std::filesystem::path(std::move(ca_dir)) / "tokens").string()) {}

std::string TokenStore::PathOf(std::string_view token) const {
  return (std::filesystem::path(dir_) / Sha256Hex(token)).string();
}

Result<std::string> TokenStore::Create(const std::string& service, Duration ttl,
                                       TimePoint now) const {
  if (!IsValidServiceName(service)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("service name '{}' is not valid (1 to 128 of A-Z, a-z, 0-9, '.', "
                            "'-', '_')",
                            service));
  }
  if (ttl < std::chrono::seconds(1) || ttl > kMaxTokenTtl) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("token ttl {} is out of range (1s to 8760h)", FormatDuration(ttl)));
  }
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail(ErrorCode::kIo, fmt::format("{}: {}", dir_, std::strerror(errno)));
  }
  unsigned char bytes[kTokenBytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return Fail(ErrorCode::kInternal, "no random bytes for a token");
  }
  std::string token = Base64Url(bytes, sizeof(bytes));
  const auto expires = std::chrono::time_point_cast<std::chrono::seconds>(now + ttl);
  const std::string record = fmt::format("service {}\nexpires {}\n", service, UnixSeconds(expires));
  if (auto written = WriteFileAtomically(PathOf(token), record, 0600, true); !written) {
    return tl::unexpected(written.error());
  }
  return token;
}

Result<void> TokenStore::Spend(std::string_view token, const std::string& service,
                               TimePoint now) const {
  if (!LooksLikeToken(token)) return Fail(ErrorCode::kNotFound, "the token is unknown or spent");
  const std::string path = PathOf(token);
  auto text = ReadWholeFile(path);
  if (!text) {
    if (text.error().code() == ErrorCode::kNotFound) {
      return Fail(ErrorCode::kNotFound, "the token is unknown or spent");
    }
    return tl::unexpected(text.error());
  }
  auto record = ParseRecord(*text);
  if (!record) return Fail(ErrorCode::kIo, fmt::format("{}: not a token record", path));
  if (record->expires <= UnixSeconds(now)) {
    (void)RemoveDurably(path, dir_);
    return Fail(ErrorCode::kFailedPrecondition, "the token has expired");
  }
  if (record->service != service) {
    return Fail(ErrorCode::kInvalidArgument, "the token is for another service");
  }
  return RemoveDurably(path, dir_);
}

std::size_t TokenStore::RemoveExpired(TimePoint now) const {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir_, ec)) {
    const std::string path = entry.path().string();
    if (path.ends_with(".tmp")) continue;
    auto text = ReadWholeFile(path);
    if (!text) continue;
    auto record = ParseRecord(*text);
    if (record && record->expires <= UnixSeconds(now) && ::unlink(path.c_str()) == 0) ++removed;
  }
  if (removed > 0) (void)SyncDirectory(dir_);
  return removed;
}

}  // namespace ferry::mesh
