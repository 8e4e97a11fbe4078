#include "config/address.hpp"

#include <gtest/gtest.h>

namespace ferry::config {
namespace {

TEST(ParseAddress, Ipv4) {
  auto a = ParseAddress("10.1.2.3:8080", AddressUse::kListener);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "10.1.2.3");
  EXPECT_EQ(a->port, 8080);
}

TEST(ParseAddress, BracketedIpv6) {
  auto a = ParseAddress("[fe80::1]:443", AddressUse::kListener);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "fe80::1");
  EXPECT_EQ(a->ToString(), "[fe80::1]:443");
}

TEST(ParseAddress, DnsNameOnlyForEndpoints) {
  EXPECT_TRUE(ParseAddress("catalog.internal:80", AddressUse::kEndpoint));
  EXPECT_FALSE(ParseAddress("catalog.internal:80", AddressUse::kListener));
}

TEST(ParseAddress, PortRangesDifferByUse) {
  EXPECT_TRUE(ParseAddress("0.0.0.0:0", AddressUse::kListener));
  EXPECT_FALSE(ParseAddress("1.2.3.4:0", AddressUse::kEndpoint));
  EXPECT_TRUE(ParseAddress("1.2.3.4:65535", AddressUse::kEndpoint));
  EXPECT_FALSE(ParseAddress("1.2.3.4:65536", AddressUse::kEndpoint));
}

TEST(ParseAddress, RejectsMalformed) {
  for (const char* text : {"", "1.2.3.4", ":80", "1.2.3.4:", "1.2.3.4:08", "1.2.3.4:8x", "::1:80",
                           "[::1]80", "[::1:80", "[nothost]:80", "10.0.0.300:80", "bad_-.name:80",
                           "a..b:80", "-a:80", "a b:80"}) {
    EXPECT_FALSE(ParseAddress(text, AddressUse::kEndpoint)) << text;
  }
}

TEST(ParseAddress, CanonicalHostFoldsIpv6SpellingsAndCase) {
  EXPECT_EQ(CanonicalHost("0:0:0:0:0:0:0:1"), CanonicalHost("::1"));
  EXPECT_EQ(CanonicalHost("Catalog.Internal"), "catalog.internal");
}

}  // namespace
}  // namespace ferry::config
