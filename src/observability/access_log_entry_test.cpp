#include "observability/access_log_entry.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

namespace ferry::observability {
namespace {

using namespace std::chrono_literals;

AccessLogEntry SampleEntry() {
  AccessLogEntry e;
  e.time = std::chrono::system_clock::time_point(1714566896789ms + 999us);  // 2024-05-01
  e.method = "GET";
  e.path = "/api/v1/items?id=7";
  e.status = 200;
  e.bytes_received = 12;
  e.bytes_sent = 3456;
  e.duration = 1234567ns;
  e.upstream = "10.0.0.7:8080";
  e.request_id = "req-1";
  e.listener = "public";
  e.route = "items";
  e.client = "192.0.2.1:51234";
  return e;
}

boost::json::value RenderAndParse(const AccessLogEntry& entry) {
  std::string line;
  AppendAccessLogLine(entry, line);
  EXPECT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line only";
  return boost::json::parse(line);  // throws (failing the test) if not valid JSON
}

TEST(AccessLogEntryTest, RendersEveryFieldAsValidJson) {
  const boost::json::value expected = boost::json::parse(R"({
    "time": "2024-05-01T12:34:56.789Z", "method": "GET", "path": "/api/v1/items?id=7",
    "status": 200, "bytes_received": 12, "bytes_sent": 3456, "duration": 0.001234,
    "upstream": "10.0.0.7:8080", "request_id": "req-1", "listener": "public",
    "route": "items", "client": "192.0.2.1:51234"})");
  EXPECT_EQ(RenderAndParse(SampleEntry()), expected);
}

TEST(AccessLogEntryTest, EscapesQuotesBackslashesAndControlCharactersInThePath) {
  AccessLogEntry e = SampleEntry();
  const std::string path =
      std::string("/a\"b\\c\nd\re\tf\x01g\x1f", 16) + std::string(1, '\0') + "h";
  e.path = path;
  EXPECT_EQ(RenderAndParse(e).at("path").as_string(), path);
}

TEST(AccessLogEntryTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  AccessLogEntry e = SampleEntry();
  e.path = "/caf\xC3\xA9/\xFF/\xED\xA0\x80";  // é, a stray byte, an encoded surrogate
  EXPECT_EQ(RenderAndParse(e).at("path").as_string(),
            "/caf\xC3\xA9/\xEF\xBF\xBD/\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(AccessLogEntryTest, EmptyUpstreamIsAnEmptyString) {
  AccessLogEntry e = SampleEntry();
  e.upstream = {};
  EXPECT_EQ(RenderAndParse(e).at("upstream").as_string(), "");
}

TEST(AccessLogEntryTest, DurationHasMicrosecondPrecisionAndWholeSeconds) {
  AccessLogEntry e = SampleEntry();
  e.duration = 12s + 5us;
  std::string line;
  AppendAccessLogLine(e, line);
  EXPECT_NE(line.find(",\"duration\":12.000005,"), std::string::npos) << line;
}

TEST(AccessLogEntryTest, FormatsTimeAsRfc3339UtcWithMilliseconds) {
  std::string out;
  AppendRfc3339(std::chrono::system_clock::time_point(0ms), 3, out);
  AppendRfc3339(std::chrono::system_clock::time_point(951782400007999us), 3, out);  // 2000-02-29
  EXPECT_EQ(out, "1970-01-01T00:00:00.000Z2000-02-29T00:00:00.007Z");
}

TEST(AccessLogEntryTest, EscapesASpecialByteAtEveryOffsetOfALongString) {
  // The plain runs are skipped 16 bytes at a time: a byte that needs care is found wherever it
  // falls, in a block or in the tail.
  for (const std::string_view special : {"\"", "\\", "\n", "\x01", "\x1f", "\xc3\xa9", "\xff"}) {
    for (std::size_t at = 0; at < 70; ++at) {
      std::string value(70, 'a');
      value.replace(at, 1, special);
      std::string out;
      AppendJsonStringContent(value, out);
      std::string expected(at, 'a');
      if (special == "\"") {
        expected += "\\\"";
      } else if (special == "\\") {
        expected += "\\\\";
      } else if (special == "\n") {
        expected += "\\n";
      } else if (special == "\x01") {
        expected += "\\u0001";
      } else if (special == "\x1f") {
        expected += "\\u001f";
      } else if (special == "\xc3\xa9") {
        expected += "\xc3\xa9";  // valid UTF-8 is kept
      } else {
        expected += "\xef\xbf\xbd";  // an invalid byte becomes U+FFFD
      }
      expected += std::string(69 - at, 'a');
      EXPECT_EQ(out, expected) << "at " << at;
    }
  }
}

}  // namespace
}  // namespace ferry::observability
