#include "bus/api/json_span.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::bus {
namespace {

TEST(JsonSpan, MembersAreTheValuesAsSent) {
  const std::string text = R"( {"a" : 12345678901234567890123 ,"b":1e-400,"c":{"d":[1, 2.50]},)"
                           R"("e":"x\"y","k\u0065y":null} )";
  auto members = JsonObjectMembers(text);
  ASSERT_TRUE(members);
  ASSERT_EQ(members->size(), 5u);
  EXPECT_EQ((*members)[0].key, "a");
  EXPECT_EQ((*members)[0].value, "12345678901234567890123");
  EXPECT_EQ((*members)[1].value, "1e-400");
  EXPECT_EQ((*members)[2].value, R"({"d":[1, 2.50]})");
  EXPECT_EQ((*members)[3].value, R"("x\"y")");
  EXPECT_EQ(JsonStringValue((*members)[3].value), "x\"y");
  EXPECT_EQ((*members)[4].key, "key");
}

TEST(JsonSpan, ArrayElements) {
  auto elements = JsonArrayElements(R"([ {"a":1} ,"s", [] ])");
  ASSERT_TRUE(elements);
  ASSERT_EQ(elements->size(), 3u);
  EXPECT_EQ((*elements)[0], R"({"a":1})");
  EXPECT_EQ((*elements)[2], "[]");
  EXPECT_TRUE(JsonArrayElements("[]"));
  EXPECT_FALSE(JsonArrayElements("{}"));
}

TEST(JsonSpan, RefusesWhatRfc8259Refuses) {
  for (const char* bad : {"",
                          " ",
                          "{",
                          "{\"a\":}",
                          "{\"a\":1,}",
                          "[1,]",
                          "01",
                          "1.",
                          ".5",
                          "-",
                          "1e",
                          "+1",
                          "tru",
                          "nul",
                          "\"a",
                          "\"\\x\"",
                          "\"\\u12g4\"",
                          "{'a':1}",
                          "{\"a\" 1}",
                          "[1 2]",
                          "1 2",
                          "\"\x01\"",
                          "\"\xff\"",
                          "\"\xc3\"",
                          "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"",
                          "\"\xc0\xaf\"",
                          "NaN",
                          "Infinity"}) {
    EXPECT_FALSE(IsJsonText(bad)) << bad;
  }
  for (const char* good : {"0", "-0.5e+3", "\"\xc3\xa9\xf0\x9f\x9a\xa2\"", "true", " null ",
                           "[[], {}]", "{\"a\":{\"b\":[false]}}", "\"\\ud83d\\ude80\""}) {
    EXPECT_TRUE(IsJsonText(good)) << good;
  }
}

TEST(JsonSpan, NestingIsBounded) {
  EXPECT_TRUE(IsJsonText(std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']')));
  EXPECT_FALSE(
      IsJsonText(std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']')));
  EXPECT_FALSE(IsJsonText(std::string(100000, '[')));
}

TEST(JsonSpan, StringValuesDecodeEscapes) {
  EXPECT_EQ(JsonStringValue(R"("a\n\t\/\\b")"), "a\n\t/\\b");
  EXPECT_EQ(JsonStringValue(R"("\u00e9\ud83d\ude80")"), "\xc3\xa9\xf0\x9f\x9a\x80");
  EXPECT_EQ(JsonStringValue(R"("\ud83dx")"), "\xef\xbf\xbdx");  // a lone surrogate
}

}  // namespace
}  // namespace ferry::bus
