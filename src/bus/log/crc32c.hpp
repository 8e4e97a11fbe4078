// CRC32C (Castagnoli), the checksum of every record header and payload in the bus log.
// Pure functions, thread-safe. Uses the SSE4.2 crc32 instruction when the CPU has it (checked
// once at run time) and a slicing-by-8 table otherwise; both give identical results.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ferry::bus {

// Continues a CRC32C: Crc32cExtend(Crc32c(a), b) == Crc32c(a + b). `crc` is the finished value
// of the bytes before (0 for none).
std::uint32_t Crc32cExtend(std::uint32_t crc, const void* data, std::size_t n);

inline std::uint32_t Crc32c(std::string_view data) {
  return Crc32cExtend(0, data.data(), data.size());
}

namespace crc32c_detail {
// The two implementations, exposed so tests can check each against the RFC 3720 vectors.
std::uint32_t ExtendSoftware(std::uint32_t crc, const void* data, std::size_t n);
std::uint32_t ExtendHardware(std::uint32_t crc, const void* data, std::size_t n);
bool HardwareAvailable();
}  // namespace crc32c_detail

}  // namespace ferry::bus
