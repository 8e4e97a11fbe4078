#include "config/bus_rules.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::config {
namespace {

TEST(BusRules, BusNames) {
  for (const char* ok : {"a", "payments", "Orders-2026.eu_1", "0"}) EXPECT_TRUE(IsBusName(ok));
  for (const char* bad : {"", ".", "..", "-a", "_a", "a b", "a/b", "a%20b", "s*", "é"}) {
    EXPECT_FALSE(IsBusName(bad)) << bad;
  }
  EXPECT_TRUE(IsBusName(std::string(128, 'a')));
  EXPECT_FALSE(IsBusName(std::string(129, 'a')));
}

TEST(BusRules, UriReferences) {
  for (const char* ok : {"/shop", "shop", "urn:shop:1", "https://shop.example/a?b=c#d", "#f",
                         "a%20b", "mailto:x@y", "//host/path", "./x:y"}) {
    EXPECT_TRUE(IsUriReference(ok)) << ok;
  }
  for (const char* bad : {"", "not a uri", "1x:y", "x_y:z", ":x", "a%zz", "a%2", "/caf\xc3\xa9",
                          "a\"b", "<a>", "a\\b"}) {
    EXPECT_FALSE(IsUriReference(bad)) << bad;
  }
}

TEST(BusRules, AbsoluteUris) {
  EXPECT_TRUE(IsAbsoluteUri("https://shop.example/schema.json"));
  EXPECT_TRUE(IsAbsoluteUri("urn:schema:1"));
  EXPECT_FALSE(IsAbsoluteUri("/schema.json"));
  EXPECT_FALSE(IsAbsoluteUri("schema"));
}

}  // namespace
}  // namespace ferry::config
