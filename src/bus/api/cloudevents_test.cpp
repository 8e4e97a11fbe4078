#include "bus/api/cloudevents.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <string>

namespace ferry::bus {
namespace {

BusTime AtMicros(std::int64_t us) { return BusTime(std::chrono::microseconds(us)); }

TEST(Rfc3339, FormatsUtcWithMicroseconds) {
  EXPECT_EQ(FormatRfc3339(AtMicros(0)), "1970-01-01T00:00:00.000000Z");
  // 2026-11-27T14:05:09.000042Z
  EXPECT_EQ(FormatRfc3339(AtMicros(1795788309000042)), "2026-11-27T14:05:09.000042Z");
  EXPECT_EQ(FormatRfc3339(AtMicros(9'214'646'399'999'999)), "2261-12-31T23:59:59.999999Z");
  // Before 1970 the fraction still counts up from the second before.
  EXPECT_EQ(FormatRfc3339(AtMicros(-1)), "1969-12-31T23:59:59.999999Z");
}

TEST(Rfc3339, FormatThenParseGivesTheSameTime) {
  for (std::int64_t us : {std::int64_t{0}, std::int64_t{1}, std::int64_t{999999},
                          std::int64_t{1795788309123456}, std::int64_t{951782400000000}}) {
    auto back = ParseRfc3339(FormatRfc3339(AtMicros(us)));
    ASSERT_TRUE(back) << us;
    EXPECT_EQ(*back, AtMicros(us)) << FormatRfc3339(AtMicros(us));
  }
}

// How DeliveryToJson carries `data`: "data" (a JSON string) or "data_base64".
std::string DataField(std::string data) {
  Delivery d;
  d.message.id = "m";
  d.message.content_type = "text/plain";
  d.message.data = std::move(data);
  const boost::json::object o = DeliveryToJson(d);
  return o.contains("data") ? "data" : "data_base64";
}

TEST(DeliveryToJson, TextTravelsAsAStringAndAnythingElseAsBase64AtAnyOffset) {
  // Long printable runs are checked 16 bytes at a time: what follows them is still checked.
  for (std::size_t at = 0; at < 40; ++at) {
    const std::string plain(40, 'a');
    const auto with = [&](std::string_view piece) {
      std::string s = plain;
      s.replace(at, 1, piece);
      return s;
    };
    EXPECT_EQ(DataField(with("\n")), "data") << at;
    EXPECT_EQ(DataField(with("\t")), "data") << at;
    EXPECT_EQ(DataField(with("\xc3\xa9")), "data") << at;          // é
    EXPECT_EQ(DataField(with("\xf0\x9f\x9a\xa2")), "data") << at;  // a four-byte sequence
    EXPECT_EQ(DataField(with(std::string_view("\0", 1))), "data_base64") << at;
    EXPECT_EQ(DataField(with("\x1b")), "data_base64") << at;
    EXPECT_EQ(DataField(with("\xff")), "data_base64") << at;
    EXPECT_EQ(DataField(with("\xc3")), "data_base64") << at;  // a sequence cut short
  }
  EXPECT_EQ(DataField(std::string(1000, 'x') + "\xe2\x82"), "data_base64");  // cut at the end
}

}  // namespace
}  // namespace ferry::bus
