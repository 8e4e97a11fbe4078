#include "http/head_scanner.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::http {
namespace {

using State = HeadScanner::State;

State ScanOnce(std::string_view head, HeadLimits limits = {}) {
  HeadScanner s(limits);
  return s.Scan(head);
}

TEST(HeadScanner, FindsEndOfHead) {
  HeadScanner s({});
  std::string in = "GET / HTTP/1.1\r\nHost: x\r\n\r\nbody";
  ASSERT_EQ(s.Scan(in), State::kComplete);
  EXPECT_EQ(s.head_size(), in.size() - 4);
}

TEST(HeadScanner, IncrementalAcrossReads) {
  HeadScanner s({});
  std::string in = "GET / HTTP/1.1\r\nHost: x\r";
  EXPECT_EQ(s.Scan(in), State::kIncomplete);
  in += "\n\r";
  EXPECT_EQ(s.Scan(in), State::kIncomplete);
  in += "\n";
  EXPECT_EQ(s.Scan(in), State::kComplete);
}

TEST(HeadScanner, RejectsBareCr_CVE_2023_30589) {
  EXPECT_EQ(ScanOnce("GET / HTTP/1.1\r\nHost: x\rX: y\r\n\r\n"), State::kMalformed);
}

TEST(HeadScanner, RejectsBareLf) {
  EXPECT_EQ(ScanOnce("GET / HTTP/1.1\nHost: x\r\n\r\n"), State::kMalformed);
}

TEST(HeadScanner, RejectsWhitespaceBeforeName_CVE_2024_27982) {
  EXPECT_EQ(ScanOnce("POST / HTTP/1.1\r\n Content-Length: 5\r\nHost: x\r\n\r\n"),
            State::kMalformed);
}

TEST(HeadScanner, RejectsObsoleteLineFolding) {
  EXPECT_EQ(ScanOnce("GET / HTTP/1.1\r\nX: a\r\n\tb\r\nHost: x\r\n\r\n"), State::kMalformed);
}

TEST(HeadScanner, RejectsControlCharacters) {
  EXPECT_EQ(ScanOnce(std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26)), State::kMalformed);
}

// Ordinary bytes are skipped 16 at a time: a special byte must stop the scan wherever it sits in
// a long run of them, and obs-text (bytes >= 0x80) must not.
TEST(HeadScanner, FindsEveryControlCharacterInALongValue) {
  const std::string prefix = "GET / HTTP/1.1\r\nX: ";
  for (char bad : {'\0', '\x01', '\x1f', '\x7f', '\r', '\n'}) {
    for (std::size_t at = 0; at < 70; ++at) {
      std::string value(70, 'v');
      value[at] = bad;
      EXPECT_EQ(ScanOnce(prefix + value + "\r\nHost: x\r\n\r\n"), State::kMalformed)
          << static_cast<int>(bad) << " at " << at;
    }
  }
  std::string obs_text(70, '\xe9');
  HeadScanner s({});
  const std::string head = prefix + obs_text + "\r\nHost: x\r\n\r\n";
  ASSERT_EQ(s.Scan(head), State::kComplete);
  EXPECT_EQ(s.head_size(), head.size());
}

TEST(HeadScanner, EnforcesByteLimit) {
  std::string big = "GET / HTTP/1.1\r\nX: " + std::string(200, 'a') + "\r\n\r\n";
  EXPECT_EQ(ScanOnce(big, {.max_bytes = 100, .max_fields = 10}), State::kTooLarge);
  EXPECT_EQ(ScanOnce(big.substr(0, 150), {.max_bytes = 100, .max_fields = 10}), State::kTooLarge);
}

TEST(HeadScanner, EnforcesFieldLimit) {
  std::string in = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < 5; ++i) in += "X: y\r\n";
  in += "\r\n";
  EXPECT_EQ(ScanOnce(in, {.max_bytes = 1000, .max_fields = 4}), State::kTooManyFields);
  EXPECT_EQ(ScanOnce(in, {.max_bytes = 1000, .max_fields = 5}), State::kComplete);
}

TEST(HeadScanner, SkipsOneEmptyLineBeforeTheStartLine) {
  const std::string in = "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
  HeadScanner s({});
  ASSERT_EQ(s.Scan(in), State::kComplete);
  EXPECT_EQ(s.head_size(), in.size());
  EXPECT_EQ(ScanOnce("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"), State::kMalformed);
  EXPECT_EQ(ScanOnce("\r\n\r\n"), State::kMalformed);
}

TEST(HeadScanner, ReportsTabs) {
  HeadScanner with({});
  ASSERT_EQ(with.Scan("GET / HTTP/1.1\r\nHost:\tx\r\n\r\n"), State::kComplete);
  EXPECT_TRUE(with.tabs());
  HeadScanner without({});
  ASSERT_EQ(without.Scan("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), State::kComplete);
  EXPECT_FALSE(without.tabs());
}

}  // namespace
}  // namespace ferry::http
