#include "bus/log/record_format.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::bus {
namespace {

std::string Frame(std::string_view payload, std::uint64_t seq = 7) {
  std::string out;
  EncodeRecord({.sequence = seq, .timestamp_us = -42, .flags = 0xA5}, payload, &out);
  return out;
}

TEST(RecordFormatTest, EncodeThenDecodeRoundTrips) {
  const std::string frame = Frame("hello");
  ASSERT_EQ(frame.size(), kRecordHeaderSize + 5);
  RecordHeader header;
  ASSERT_EQ(DecodeHeader(frame, &header), HeaderStatus::kOk);
  EXPECT_EQ(header.length, 5u);
  EXPECT_EQ(header.sequence, 7u);
  EXPECT_EQ(header.timestamp_us, -42);
  EXPECT_EQ(header.flags, 0xA5u);
  EXPECT_TRUE(PayloadMatches(header, std::string_view(frame).substr(kRecordHeaderSize)));
}

TEST(RecordFormatTest, EveryFlippedHeaderBitIsDetected) {
  const std::string frame = Frame("payload");
  for (std::size_t byte = 0; byte < kRecordHeaderSize; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = frame;
      damaged[byte] = static_cast<char>(damaged[byte] ^ (1 << bit));
      RecordHeader header;
      const HeaderStatus status = DecodeHeader(damaged, &header);
      EXPECT_TRUE(status == HeaderStatus::kBadMagic || status == HeaderStatus::kBadChecksum)
          << "byte " << byte << " bit " << bit;
    }
  }
}

TEST(RecordFormatTest, FlippedPayloadByteFailsPayloadCheck) {
  std::string frame = Frame("payload");
  frame[kRecordHeaderSize + 3] ^= 0x10;
  RecordHeader header;
  ASSERT_EQ(DecodeHeader(frame, &header), HeaderStatus::kOk);
  EXPECT_FALSE(PayloadMatches(header, std::string_view(frame).substr(kRecordHeaderSize)));
}

TEST(RecordFormatTest, EmptyPayloadIsAValidRecord) {
  const std::string frame = Frame("");
  RecordHeader header;
  ASSERT_EQ(DecodeHeader(frame, &header), HeaderStatus::kOk);
  EXPECT_EQ(header.length, 0u);
  EXPECT_TRUE(PayloadMatches(header, ""));
}

}  // namespace
}  // namespace ferry::bus
