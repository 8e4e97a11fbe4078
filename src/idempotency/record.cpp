#include "idempotency/record.hpp"

#include <openssl/evp.h>

#include <cstring>

namespace ferry::idempotency {
namespace {

constexpr std::uint8_t kVersion = 1;

void PutU64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutBytes(std::string& out, std::string_view bytes) {
  PutU64(out, bytes.size());
  out.append(bytes);
}

// Reads what PutU64/PutBytes wrote; every read is bounds-checked (a torn value fails).
class Reader {
 public:
  explicit Reader(std::string_view bytes) : rest_(bytes) {}
  bool U8(std::uint8_t& v) {
    if (rest_.empty()) return false;
    v = static_cast<std::uint8_t>(rest_[0]);
    rest_.remove_prefix(1);
    return true;
  }
  bool U64(std::uint64_t& v) {
    if (rest_.size() < 8) return false;
    v = 0;
    for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<std::uint8_t>(rest_[i])} << (8 * i);
    rest_.remove_prefix(8);
    return true;
  }
  bool I64(std::int64_t& v) {
    std::uint64_t u = 0;
    if (!U64(u)) return false;
    v = static_cast<std::int64_t>(u);
    return true;
  }
  bool Bytes(std::string& v) {
    std::uint64_t n = 0;
    if (!U64(n) || n > rest_.size()) return false;
    v.assign(rest_.substr(0, n));
    rest_.remove_prefix(n);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

}  // namespace

BeginResult Decide(const std::optional<Record>& existing, std::string_view fingerprint,
                   std::int64_t now_ms) {
  BeginResult result;
  if (!existing || existing->expires_at_ms <= now_ms) return result;  // kStarted
  if (existing->fingerprint != fingerprint) {
    result.outcome = Outcome::kMismatch;
  } else if (existing->state == Record::State::kDone) {
    result.outcome = Outcome::kReplay;
    result.response = existing->response;
  } else if (existing->lease_until_ms > now_ms) {
    result.outcome = Outcome::kInFlight;
    result.lease_until_ms = existing->lease_until_ms;
  } else {
    result.outcome = Outcome::kOutcomeUnknown;
  }
  return result;
}

std::string Encode(const Record& r) {
  std::string out;
  out.reserve(64 + r.fingerprint.size() + r.response.body.size());
  out.push_back(static_cast<char>(kVersion));
  out.push_back(static_cast<char>(r.state));
  PutBytes(out, r.fingerprint);
  PutU64(out, r.token);
  PutU64(out, static_cast<std::uint64_t>(r.lease_until_ms));
  PutU64(out, static_cast<std::uint64_t>(r.expires_at_ms));
  PutU64(out, static_cast<std::uint64_t>(r.response.status));
  PutU64(out, r.response.headers.size());
  for (const auto& [name, value] : r.response.headers) {
    PutBytes(out, name);
    PutBytes(out, value);
  }
  PutBytes(out, r.response.body);
  return out;
}

std::optional<Record> Decode(std::string_view bytes) {
  Reader in(bytes);
  Record r;
  std::uint8_t version = 0, state = 0;
  std::uint64_t status = 0, header_count = 0;
  if (!in.U8(version) || version != kVersion || !in.U8(state)) return std::nullopt;
  if (state != static_cast<std::uint8_t>(Record::State::kInFlight) &&
      state != static_cast<std::uint8_t>(Record::State::kDone)) {
    return std::nullopt;
  }
  r.state = static_cast<Record::State>(state);
  if (!in.Bytes(r.fingerprint) || !in.U64(r.token) || !in.I64(r.lease_until_ms) ||
      !in.I64(r.expires_at_ms) || !in.U64(status) || status > 999 || !in.U64(header_count) ||
      header_count > bytes.size()) {
    return std::nullopt;
  }
  r.response.status = static_cast<int>(status);
  r.response.headers.resize(header_count);
  for (auto& [name, value] : r.response.headers) {
    if (!in.Bytes(name) || !in.Bytes(value)) return std::nullopt;
  }
  if (!in.Bytes(r.response.body) || !in.done()) return std::nullopt;
  return r;
}

std::string Fingerprint(std::string_view method, std::string_view target, std::string_view body) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  // Lengths first, so no two different (method, target, body) triples hash the same bytes.
  std::string lengths;
  PutU64(lengths, method.size());
  PutU64(lengths, target.size());
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  EVP_DigestUpdate(ctx, lengths.data(), lengths.size());
  EVP_DigestUpdate(ctx, method.data(), method.size());
  EVP_DigestUpdate(ctx, target.data(), target.size());
  EVP_DigestUpdate(ctx, body.data(), body.size());
  EVP_DigestFinal_ex(ctx, digest, &size);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(size * 2);
  for (unsigned int i = 0; i < size; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 0xf]);
  }
  return hex;
}

}  // namespace ferry::idempotency
