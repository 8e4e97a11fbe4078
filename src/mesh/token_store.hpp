// One-time bootstrap tokens of `ferry ca serve` (`ferry ca token`): the credential of a node
// that has no mesh certificate yet. A token is 32 random bytes, base64url; the CA directory
// keeps only its SHA-256 (DIR/tokens/<hex>, mode 0600, naming the service the token is for and
// when it expires), so a copy of the directory does not hand out certificates. A token is
// spent by deleting its file (and syncing the directory) before the certificate is returned:
// unlink succeeds once, so two requests racing with one token get one certificate between
// them, and a spent token stays spent across a restart of the CA.
// Blocking file I/O; safe from several threads (the file system arbitrates).
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/units.hpp"

namespace ferry::mesh {

inline constexpr Duration kDefaultTokenTtl = std::chrono::hours(1);

class TokenStore {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  // `ca_dir`: a CA directory; tokens live in its tokens/ subdirectory (made when first needed).
  explicit TokenStore(std::string ca_dir);

  // A new token for `service`, valid until now + ttl. kInvalidArgument for a bad service name
  // or ttl (1s to 8760h), kIo.
  Result<std::string> Create(const std::string& service, Duration ttl,
                             TimePoint now = std::chrono::system_clock::now()) const;

  // Spends `token` for `service`: Ok once; then kNotFound. Errors: kNotFound (unknown or spent),
  // kFailedPrecondition (expired: the file is deleted too), kInvalidArgument (the token is for
  // another service; it stays unspent, and the message names neither), kIo.
  Result<void> Spend(std::string_view token, const std::string& service,
                     TimePoint now = std::chrono::system_clock::now()) const;

  // Deletes the files of expired tokens; returns how many.
  std::size_t RemoveExpired(TimePoint now = std::chrono::system_clock::now()) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string PathOf(std::string_view token) const;
  std::string dir_;  // CA_DIR/tokens
};

}  // namespace ferry::mesh
