// CRC-32 (IEEE 802.3, the one of zlib and Python's zlib.crc32), computed incrementally.
// A value type; not shared between threads.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace ferry::examples {

constexpr std::array<std::uint32_t, 256> MakeCrc32Table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}

class Crc32 {
 public:
  void Update(std::string_view data) {
    for (char c : data) {
      crc_ = kTable[(crc_ ^ static_cast<unsigned char>(c)) & 0xFFu] ^ (crc_ >> 8);
    }
  }
  std::uint32_t Value() const { return crc_ ^ 0xFFFFFFFFu; }

 private:
  static constexpr std::array<std::uint32_t, 256> kTable = MakeCrc32Table();

  std::uint32_t crc_ = 0xFFFFFFFFu;
};

}  // namespace ferry::examples
