#include "bus/log/record_format.hpp"

#include <cstring>
#include <type_traits>

#include "bus/log/crc32c.hpp"

namespace ferry::bus {
namespace {

template <typename T>
void PutLe(char* p, T v) {
  using U = std::make_unsigned_t<T>;
  auto u = static_cast<U>(v);
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<char>(u & 0xFF);
    u = static_cast<U>(u >> 8);
  }
}

template <typename T>
T GetLe(const char* p) {
  using U = std::make_unsigned_t<T>;
  U u = 0;
  for (std::size_t i = sizeof(T); i-- > 0;) {
    u = static_cast<U>((u << 8) | static_cast<unsigned char>(p[i]));
  }
  return static_cast<T>(u);
}

constexpr std::size_t kHeaderCrcOffset = 32;

}  // namespace

void EncodeRecord(RecordHeader header, std::string_view payload, std::string* out) {
  header.length = static_cast<std::uint32_t>(payload.size());
  header.payload_crc = Crc32c(payload);
  char h[kRecordHeaderSize];
  std::memcpy(h, kRecordMagic.data(), kRecordMagic.size());
  PutLe(h + 4, header.length);
  PutLe(h + 8, header.sequence);
  PutLe(h + 16, header.timestamp_us);
  PutLe(h + 24, header.flags);
  PutLe(h + 28, header.payload_crc);
  PutLe(h + kHeaderCrcOffset, Crc32c(std::string_view(h, kHeaderCrcOffset)));
  out->append(h, kRecordHeaderSize);
  out->append(payload);
}

HeaderStatus DecodeHeader(std::string_view bytes, RecordHeader* out) {
  const char* h = bytes.data();
  if (std::memcmp(h, kRecordMagic.data(), kRecordMagic.size()) != 0) return HeaderStatus::kBadMagic;
  if (GetLe<std::uint32_t>(h + kHeaderCrcOffset) != Crc32c(bytes.substr(0, kHeaderCrcOffset))) {
    return HeaderStatus::kBadChecksum;
  }
  out->length = GetLe<std::uint32_t>(h + 4);
  out->sequence = GetLe<std::uint64_t>(h + 8);
  out->timestamp_us = GetLe<std::int64_t>(h + 16);
  out->flags = GetLe<std::uint32_t>(h + 24);
  out->payload_crc = GetLe<std::uint32_t>(h + 28);
  if (out->length > kMaxFramePayload) return HeaderStatus::kBadLength;
  return HeaderStatus::kOk;
}

bool PayloadMatches(const RecordHeader& header, std::string_view payload) {
  return payload.size() == header.length && Crc32c(payload) == header.payload_crc;
}

std::string_view Describe(HeaderStatus status) {
  switch (status) {
    case HeaderStatus::kOk:
      return "ok";
    case HeaderStatus::kBadMagic:
      return "no record magic";
    case HeaderStatus::kBadChecksum:
      return "header checksum mismatch";
    case HeaderStatus::kBadLength:
      return "record length over the frame limit";
  }
  return "unknown";
}

}  // namespace ferry::bus
