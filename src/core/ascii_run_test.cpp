#include "core/ascii_run.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry {
namespace {

TEST(AsciiRunEnd, StopsAtTheFirstByteThatNeedsALookWhereverItFalls) {
  // At every offset, in a 16-byte block or in the tail, from every start before it.
  for (const char special : {'\0', '\x01', '\x1f', '\x80', '\xc3', '\xff', '"', '\\'}) {
    for (std::size_t at = 0; at < 40; ++at) {
      std::string s(40, 'a');
      s[at] = special;
      for (std::size_t from = 0; from <= at; from += 7) {
        EXPECT_EQ(AsciiRunEnd(s, from, '"', '\\'), at) << int(special) << " at " << at;
      }
    }
  }
  // Spaces, DEL and the stop characters of someone else are plain.
  const std::string plain = std::string(33, ' ') + "\x7f\"\\~" + std::string(20, 'z');
  EXPECT_EQ(AsciiRunEnd(plain, 0), plain.size());
  EXPECT_EQ(AsciiRunEnd(plain, 0, '"'), 34u);
  EXPECT_EQ(AsciiRunEnd(plain, 5, '~', '\\'), 35u);
  EXPECT_EQ(AsciiRunEnd(plain, plain.size()), plain.size());
  EXPECT_EQ(AsciiRunEnd("", 0), 0u);
}

}  // namespace
}  // namespace ferry
