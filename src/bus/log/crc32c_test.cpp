#include "bus/log/crc32c.hpp"

#include <gtest/gtest.h>

#include <array>
#include <string>

namespace ferry::bus {
namespace {

using ExtendFn = std::uint32_t (*)(std::uint32_t, const void*, std::size_t);

std::uint32_t Of(ExtendFn fn, const std::string& s) { return fn(0, s.data(), s.size()); }

// RFC 3720 (iSCSI) appendix B.4 vectors plus the common "123456789" check value.
void ExpectRfc3720Vectors(ExtendFn fn) {
  EXPECT_EQ(Of(fn, "123456789"), 0xE3069283u);
  EXPECT_EQ(Of(fn, std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Of(fn, std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending(32, '\0');
  std::string descending(32, '\0');
  for (int i = 0; i < 32; ++i) {
    ascending[i] = static_cast<char>(i);
    descending[i] = static_cast<char>(31 - i);
  }
  EXPECT_EQ(Of(fn, ascending), 0x46DD794Eu);
  EXPECT_EQ(Of(fn, descending), 0x113FDB5Cu);
  const std::array<unsigned char, 48> pdu = {
      0x01, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
      0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
      0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  EXPECT_EQ(fn(0, pdu.data(), pdu.size()), 0xD9963A56u);
}

TEST(Crc32cTest, SoftwareMatchesRfc3720Vectors) {
  ExpectRfc3720Vectors(&crc32c_detail::ExtendSoftware);
}

TEST(Crc32cTest, HardwareMatchesRfc3720Vectors) {
  if (!crc32c_detail::HardwareAvailable()) GTEST_SKIP() << "no SSE4.2 on this CPU";
  ExpectRfc3720Vectors(&crc32c_detail::ExtendHardware);
}

TEST(Crc32cTest, ExtendEqualsWholeAtEverySplitPoint) {
  std::string data;
  for (int i = 0; i < 100; ++i) data.push_back(static_cast<char>(i * 37 + 11));
  const std::uint32_t whole = Crc32c(data);
  for (std::size_t split = 0; split <= data.size(); ++split) {
    const std::uint32_t head = Crc32c(std::string_view(data).substr(0, split));
    EXPECT_EQ(Crc32cExtend(head, data.data() + split, data.size() - split), whole) << split;
    EXPECT_EQ(crc32c_detail::ExtendSoftware(0, data.data(), split),
              crc32c_detail::ExtendHardware(0, data.data(), split));
  }
}

TEST(Crc32cTest, EmptyInputIsZero) { EXPECT_EQ(Crc32c(""), 0u); }

}  // namespace
}  // namespace ferry::bus
