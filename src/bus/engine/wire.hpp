// Little helpers to encode the engine's records: varints, fixed 64-bit values and
// length-prefixed strings. Header-only; values only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::bus::wire {

inline void PutVarint(std::string* out, std::uint64_t v) {
  if (v < 0x80) {  // most of them: lengths of short fields, flags
    out->push_back(static_cast<char>(v));
    return;
  }
  char bytes[10];
  std::size_t n = 0;
  while (v >= 0x80) {
    bytes[n++] = static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  bytes[n++] = static_cast<char>(v);
  out->append(bytes, n);
}

inline void PutSigned(std::string* out, std::int64_t v) {
  PutVarint(out, (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63));
}

inline void PutString(std::string* out, std::string_view s) {
  PutVarint(out, s.size());
  out->append(s);
}

// Reads what the Put functions wrote; every Get returns nullopt past the end or on garbage.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  std::optional<std::uint64_t> Varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in_.empty()) return std::nullopt;
      const auto byte = static_cast<std::uint8_t>(in_.front());
      in_.remove_prefix(1);
      v |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return v;
    }
    return std::nullopt;
  }

  std::optional<std::int64_t> Signed() {
    auto v = Varint();
    if (!v) return std::nullopt;
    return static_cast<std::int64_t>((*v >> 1) ^ (~(*v & 1) + 1));
  }

  std::optional<std::string> String() {
    auto n = Varint();
    if (!n || *n > in_.size()) return std::nullopt;
    std::string s(in_.substr(0, *n));
    in_.remove_prefix(*n);
    return s;
  }

  bool empty() const { return in_.empty(); }

 private:
  std::string_view in_;
};

}  // namespace ferry::bus::wire
