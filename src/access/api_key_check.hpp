// API key authentication (`api_keys: {header, keys: [{name, sha256}]}`): the key a client sends
// in the header is hashed (SHA-256) and compared, in constant time, with every configured hash.
// Only hashes are kept, so neither the config nor memory dumps hold a usable key.
// Thread safety: immutable once built; Check is const and may run on every worker at once.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace ferry::access {

using Sha256Digest = std::array<unsigned char, 32>;

Sha256Digest Sha256(std::string_view bytes);
// 64 hex digits (either case) as a digest; nullopt for anything else.
std::optional<Sha256Digest> ParseSha256Hex(std::string_view hex);
// The digest as 64 lowercase hex digits (what `printf %s KEY | sha256sum` prints).
std::string Sha256Hex(std::string_view bytes);

class ApiKeyCheck {
 public:
  enum class Outcome {
    kAccepted,  // the key is one of the configured ones
    kMissing,   // no key (no header, or an empty one)
    kInvalid,   // a key none of the hashes fits
  };
  struct Answer {
    Outcome outcome;
    std::string_view name;  // the key's name when kAccepted (lives as long as the check)
  };

  // The keys as the loader checked them (every sha256 is 64 hex digits); others are skipped.
  explicit ApiKeyCheck(const config::ApiKeys& keys);

  const std::string& header() const { return header_; }
  // The presented key (the header's value, or nullopt). Every configured hash is compared, so
  // the time taken does not depend on which key matched, or how much of one.
  Answer Check(std::optional<std::string_view> presented) const;

 private:
  struct Key {
    Sha256Digest digest;
    std::string name;
  };
  std::string header_;
  std::vector<Key> keys_;
};

}  // namespace ferry::access
