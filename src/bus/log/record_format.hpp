// The on-disk frame of one log record. Every record is self-describing so a scanner can find
// the next good record after damage:
//
//   offset size  field
//   0      4     magic F0 E7 0B 5A (F0 E7 is never valid UTF-8, so text payloads rarely hold it)
//   4      4     payload length, little-endian
//   8      8     sequence number
//   16     8     timestamp, microseconds since the Unix epoch (signed)
//   24     4     flags, opaque to the log (the bus layer's record kinds)
//   28     4     CRC32C of the payload
//   32     4     CRC32C of bytes [0, 32): magic, length, sequence, timestamp, flags, payload CRC
//   36     len   payload
//
// All integers little-endian. Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry::bus {

inline constexpr std::array<unsigned char, 4> kRecordMagic = {0xF0, 0xE7, 0x0B, 0x5A};
inline constexpr std::size_t kRecordHeaderSize = 36;
// No frame claims more than this: a damaged length field cannot make a reader allocate more.
inline constexpr std::uint32_t kMaxFramePayload = 64u << 20;

struct RecordHeader {
  std::uint32_t length = 0;       // payload bytes
  std::uint64_t sequence = 0;     // 1, 2, 3, ... per log; 0 is never used
  std::int64_t timestamp_us = 0;  // when the record was appended
  std::uint32_t flags = 0;        // opaque to the log
  std::uint32_t payload_crc = 0;  // CRC32C of the payload
};

enum class HeaderStatus {
  kOk,
  kBadMagic,     // the 4 bytes at this offset are not the magic
  kBadChecksum,  // magic present but the header CRC does not match
  kBadLength,    // a well-formed header whose length exceeds kMaxFramePayload
};

// Appends the framed record (header then payload) to `out`; fills in header.length and
// header.payload_crc from `payload`.
void EncodeRecord(RecordHeader header, std::string_view payload, std::string* out);

// Decodes the header at the start of `bytes` (which holds at least kRecordHeaderSize bytes).
HeaderStatus DecodeHeader(std::string_view bytes, RecordHeader* out);

// Whether `payload` is what `header` describes.
bool PayloadMatches(const RecordHeader& header, std::string_view payload);

std::string_view Describe(HeaderStatus status);

}  // namespace ferry::bus
