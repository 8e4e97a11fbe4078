#include "access/api_key_check.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstddef>

namespace ferry::access {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Sha256Digest Sha256(std::string_view bytes) {
  Sha256Digest out{};
  unsigned int length = 0;
  // One-shot EVP digest: no context to manage; SHA-256 cannot fail on valid arguments.
  EVP_Digest(bytes.data(), bytes.size(), out.data(), &length, EVP_sha256(), nullptr);
  return out;
}

std::optional<Sha256Digest> ParseSha256Hex(std::string_view hex) {
  Sha256Digest out{};
  if (hex.size() != out.size() * 2) return std::nullopt;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int high = HexValue(hex[2 * i]);
    const int low = HexValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<unsigned char>(high * 16 + low);
  }
  return out;
}

std::string Sha256Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  const Sha256Digest digest = Sha256(bytes);
  std::string out;
  out.reserve(digest.size() * 2);
  for (unsigned char b : digest) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

ApiKeyCheck::ApiKeyCheck(const config::ApiKeys& keys) : header_(keys.header) {
  for (const config::ApiKey& key : keys.keys) {
    if (auto digest = ParseSha256Hex(key.sha256)) keys_.push_back(Key{*digest, key.name});
  }
}

ApiKeyCheck::Answer ApiKeyCheck::Check(std::optional<std::string_view> presented) const {
  if (!presented || presented->empty()) return {Outcome::kMissing, {}};
  const Sha256Digest digest = Sha256(*presented);
  const Key* found = nullptr;
  for (const Key& key : keys_) {
    // CRYPTO_memcmp takes the same time whatever the bytes; no early exit on a match either.
    const bool equal = CRYPTO_memcmp(key.digest.data(), digest.data(), digest.size()) == 0;
    if (equal && found == nullptr) found = &key;
  }
  if (found == nullptr) return {Outcome::kInvalid, {}};
  return {Outcome::kAccepted, found->name};
}

}  // namespace ferry::access
