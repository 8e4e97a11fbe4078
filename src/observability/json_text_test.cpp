#include "observability/json_text.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <limits>

namespace ferry::observability {
namespace {

TEST(JsonTextTest, WritesFractionsAsPeopleDo) {
  boost::json::object o;
  o["rate"] = 1.944;
  o["half"] = 0.5;
  o["zero"] = 0.0;
  o["tiny"] = 1e-7;
  o["count"] = 3;
  o["big"] = std::uint64_t{18446744073709551615u};
  o["neg"] = -2.25;
  o["none"] = std::numeric_limits<double>::quiet_NaN();
  o["inf"] = std::numeric_limits<double>::infinity();
  o["name"] = "a \"quoted\" \n name";
  o["list"] = boost::json::array{1.5, true, nullptr, boost::json::object{{"k", 2.0}}};
  const std::string text = JsonText(o);
  EXPECT_NE(text.find("\"rate\":1.944,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"half\":0.5,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"zero\":0,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"count\":3,"), std::string::npos) << text;
  EXPECT_NE(text.find("\"none\":null,"), std::string::npos) << text;
  EXPECT_EQ(text.find('E'), std::string::npos) << text;
  // Still JSON, with the same values.
  const boost::json::value back = boost::json::parse(text);
  EXPECT_DOUBLE_EQ(back.at("rate").to_number<double>(), 1.944);
  EXPECT_DOUBLE_EQ(back.at("tiny").to_number<double>(), 1e-7);
  EXPECT_EQ(back.at("big").as_uint64(), 18446744073709551615u);
  EXPECT_DOUBLE_EQ(back.at("neg").to_number<double>(), -2.25);
  EXPECT_TRUE(back.at("inf").is_null());
  EXPECT_EQ(back.at("name").as_string(), "a \"quoted\" \n name");
  EXPECT_DOUBLE_EQ(back.at("list").at(3).at("k").to_number<double>(), 2.0);
  EXPECT_TRUE(back.at("list").at(2).is_null());
}

TEST(JsonTextTest, ParsesBackToTheSameValueAsBoostsOwnText) {
  boost::json::object o;
  o["id"] = "0123456789abcdef";
  o["escapes"] = std::string("quote \" backslash \\ tab \t nul \0 bell \x07 del \x7f", 38);
  o["utf8"] = "caf\xc3\xa9 \xe2\x9c\x93";
  o["int"] = -9223372036854775807LL - 1;
  o["uint"] = std::uint64_t{18446744073709551615u};
  o["yes"] = true;
  o["no"] = false;
  o["nothing"] = nullptr;
  o["nested"] = boost::json::array{boost::json::object{{"k\"ey", "v"}}, boost::json::array{}};
  o[""] = boost::json::object{};
  const std::string text = JsonText(o);
  EXPECT_EQ(boost::json::parse(text), boost::json::parse(boost::json::serialize(o))) << text;
}

TEST(JsonTextTest, InvalidUtf8BecomesReplacementCharactersNotInvalidJson) {
  boost::json::object o;
  o["bad\xff"] = "a\xc3(b\x80";
  const std::string text = JsonText(o);
  boost::system::error_code ec;
  const boost::json::value back = boost::json::parse(text, ec);
  ASSERT_FALSE(ec) << text;
  EXPECT_EQ(back.at("bad\xef\xbf\xbd").as_string(), "a\xef\xbf\xbd(b\xef\xbf\xbd");
}

}  // namespace
}  // namespace ferry::observability
