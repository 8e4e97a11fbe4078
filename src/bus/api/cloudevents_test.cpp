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
  std::string text;
  AppendDeliveryJson(d, {"/s", "t"}, MessageFormat::kFull, text);
  const boost::json::object o = boost::json::parse(text).as_object();
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

http::Headers HeadersOf(std::initializer_list<std::pair<std::string, std::string>> fields) {
  http::Headers h;
  for (const auto& [name, value] : fields) h.Add(name, value);
  return h;
}

const EventDefaults kDefaults{"/v1/queues/q", "ferry.message"};

TEST(ParsePublish, StructuredJsonDataIsKeptAsSent) {
  const std::string data = R"({"big":12345678901234567890123, "tiny":1e-400,"s":"\u00e9"})";
  auto events = ParsePublish(
      HeadersOf({{"content-type", "application/cloudevents+json"}}),
      R"({"specversion":"1.0","id":"a","source":"/s","type":"t","data":)" + data + "}", kDefaults);
  ASSERT_TRUE(events) << events.error().message();
  EXPECT_EQ(events->front().data, data);
  EXPECT_EQ(events->front().content_type, "application/json");
  Delivery d;
  d.message = events->front();
  std::string out;
  AppendDeliveryJson(d, kDefaults, MessageFormat::kFull, out);
  // The data twice, as sent: beside Ferry's fields, and in `event`.
  std::size_t at = out.find("\"data\":" + data);
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_NE(out.find("\"data\":" + data, at + 1), std::string::npos) << out;
}

TEST(ParsePublish, StructuredStringDataOfTextIsItsValue) {
  auto events = ParsePublish(HeadersOf({{"content-type", "application/cloudevents+json"}}),
                             R"({"specversion":"1.0","id":"a","source":"/s","type":"t",)"
                             R"("datacontenttype":"text/plain","data":"a\nb\u00e9"})",
                             kDefaults);
  ASSERT_TRUE(events) << events.error().message();
  EXPECT_EQ(events->front().data, "a\nb\xc3\xa9");
}

TEST(ParsePublish, PlainBodyGetsTheDefaultSourceAndType) {
  auto events = ParsePublish(HeadersOf({{"content-type", "text/plain"}}), "x", kDefaults);
  ASSERT_TRUE(events);
  EXPECT_EQ(events->front().source, "/v1/queues/q");
  EXPECT_EQ(events->front().type, "ferry.message");
}

TEST(ParsePublish, TheProducersTimeIsKept) {
  auto events = ParsePublish(HeadersOf({{"ce-specversion", "1.0"},
                                        {"ce-id", "a"},
                                        {"ce-source", "/s"},
                                        {"ce-type", "t"},
                                        {"ce-time", "2020-01-02T03:04:05+02:00"}}),
                             "x", kDefaults);
  ASSERT_TRUE(events);
  EXPECT_EQ(events->front().attributes.at("time"), "2020-01-02T03:04:05+02:00");
}

// A record stored before publishes kept `time` and got a source and type (a plain body then had
// neither): it is still delivered as a valid event, its time the storage time.
TEST(AppendDeliveryJson, AnOlderRecordGetsTheDefaultsAndItsStorageTime) {
  Delivery d;
  d.message.id = "old";
  d.message.content_type = "text/plain";
  d.message.data = "x";
  d.message.published_at = AtMicros(1795788309000042);
  std::string text;
  AppendDeliveryJson(d, kDefaults, MessageFormat::kEvent, text);
  const boost::json::object event = boost::json::parse(text).as_object().at("event").as_object();
  EXPECT_EQ(event.at("source").as_string(), "/v1/queues/q");
  EXPECT_EQ(event.at("type").as_string(), "ferry.message");
  EXPECT_EQ(event.at("time").as_string(), "2026-11-27T14:05:09.000042Z");
  http::Headers pushed;
  AddBinaryModeHeaders(d, kDefaults, pushed);
  EXPECT_EQ(pushed.Get("ce-source").value_or(""), "/v1/queues/q");
  EXPECT_EQ(pushed.Get("ce-time").value_or(""), "2026-11-27T14:05:09.000042Z");
}

TEST(Rfc3339, ValidatesDateTimes) {
  for (const char* ok : {"2020-01-02T03:04:05Z", "2020-01-02t03:04:05.123456789z",
                         "2020-02-29T23:59:60-08:00", "2021-12-31T00:00:00+14:00"}) {
    EXPECT_TRUE(IsRfc3339(ok)) << ok;
  }
  for (const char* bad : {"", "2020-01-02", "2020-01-02 03:04:05Z", "2020-13-01T00:00:00Z",
                          "2021-02-29T00:00:00Z", "2020-01-02T24:00:00Z", "2020-01-02T03:04:05",
                          "2020-01-02T03:04:05.Z", "2020-01-02T03:04:05+0200", "yesterday"}) {
    EXPECT_FALSE(IsRfc3339(bad)) << bad;
  }
}

TEST(ExtensionName, IsOneToTwentyLowercaseLettersOrDigits) {
  EXPECT_TRUE(IsExtensionName("myext"));
  EXPECT_TRUE(IsExtensionName("a1"));
  EXPECT_TRUE(IsExtensionName(std::string(20, 'x')));
  EXPECT_FALSE(IsExtensionName(""));
  EXPECT_FALSE(IsExtensionName(std::string(21, 'x')));
  EXPECT_FALSE(IsExtensionName("MyExt"));
  EXPECT_FALSE(IsExtensionName("my-ext"));
  EXPECT_FALSE(IsExtensionName("lease_expires"));
}

}  // namespace
}  // namespace ferry::bus
