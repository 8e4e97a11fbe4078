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

// --- ParseIpNetwork and IpNetwork::Contains (listeners[].trust_deadline_from)
// ---------------------

IpNetwork Network(std::string_view text) {
  auto network = ParseIpNetwork(text);
  EXPECT_TRUE(network) << text << ": " << (network ? "" : network.error().message());
  return network ? *network : IpNetwork{};
}

TEST(ParseIpNetwork, Ipv4ClearsHostBitsAndKeepsTheText) {
  const IpNetwork n = Network("10.1.2.3/8");
  EXPECT_EQ(n.text, "10.1.2.3/8");
  EXPECT_FALSE(n.v6);
  EXPECT_EQ(n.prefix, 8);
  EXPECT_EQ(n.bytes[0], 10);
  EXPECT_EQ(n.bytes[1], 0);
  EXPECT_EQ(n.bytes[3], 0);
  EXPECT_EQ(Network("172.16.255.1/12").bytes[1], 16);  // 0xff & 0xf0 of the 2nd byte
}

TEST(ParseIpNetwork, BareAddressesAreSingleHosts) {
  EXPECT_EQ(Network("192.168.1.7").prefix, 32);
  const IpNetwork v6 = Network("::1");
  EXPECT_TRUE(v6.v6);
  EXPECT_EQ(v6.prefix, 128);
  EXPECT_EQ(v6.bytes[15], 1);
}

TEST(ParseIpNetwork, Rejects) {
  for (const char* bad : {"10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/a",
                          "10.0.0/8", "peers.internal", "", "/8", "[::1]/128", "10.0.0.0/8/8"}) {
    auto network = ParseIpNetwork(bad);
    EXPECT_FALSE(network) << bad;
    if (!network) {
      EXPECT_EQ(network.error().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  EXPECT_EQ(ParseIpNetwork("10.0.0.0/33").error().message(),
            "invalid network '10.0.0.0/33': the prefix length must be 0-32");
  EXPECT_EQ(ParseIpNetwork("x").error().message(), "invalid network 'x': 'x' is not an IP address");
}

TEST(IpNetworkContains, Ipv4) {
  const IpNetwork n = Network("10.0.0.0/8");
  EXPECT_TRUE(n.Contains("10.0.0.0"));
  EXPECT_TRUE(n.Contains("10.255.255.255"));
  EXPECT_FALSE(n.Contains("11.0.0.1"));
  EXPECT_FALSE(n.Contains("9.255.255.255"));
  const IpNetwork odd = Network("172.16.0.0/12");
  EXPECT_TRUE(odd.Contains("172.31.1.1"));
  EXPECT_FALSE(odd.Contains("172.32.0.1"));
  EXPECT_FALSE(odd.Contains("172.15.255.255"));
  const IpNetwork host = Network("192.168.1.7");
  EXPECT_TRUE(host.Contains("192.168.1.7"));
  EXPECT_FALSE(host.Contains("192.168.1.8"));
}

TEST(IpNetworkContains, ZeroPrefixContainsEveryAddressOfItsFamily) {
  EXPECT_TRUE(Network("0.0.0.0/0").Contains("203.0.113.9"));
  EXPECT_FALSE(Network("0.0.0.0/0").Contains("2001:db8::1"));
  EXPECT_TRUE(Network("::/0").Contains("2001:db8::1"));
}

TEST(IpNetworkContains, Ipv6) {
  const IpNetwork n = Network("fd00::/8");
  EXPECT_TRUE(n.Contains("fd12:3456::1"));
  EXPECT_FALSE(n.Contains("fe80::1"));
  EXPECT_FALSE(n.Contains("10.0.0.1"));  // another family
  EXPECT_TRUE(Network("2001:db8::/33").Contains("2001:db8:7fff::1"));
  EXPECT_FALSE(Network("2001:db8::/33").Contains("2001:db8:8000::1"));
  EXPECT_TRUE(Network("::1").Contains("::1"));
  EXPECT_FALSE(Network("::1").Contains("::2"));
}

TEST(IpNetworkContains, Ipv4ClientsOnADualStackSocket) {
  // An IPv4 client accepted on an IPv6 socket shows as ::ffff:a.b.c.d.
  const IpNetwork n = Network("10.0.0.0/8");
  EXPECT_TRUE(n.Contains("::ffff:10.1.2.3"));
  EXPECT_FALSE(n.Contains("::ffff:11.1.2.3"));
  EXPECT_FALSE(n.Contains("::10.1.2.3"));  // not a mapped address
  EXPECT_FALSE(Network("127.0.0.1").Contains("::1"));
}

TEST(IpNetworkContains, NotAnAddressIsOutside) {
  EXPECT_FALSE(Network("0.0.0.0/0").Contains(""));
  EXPECT_FALSE(Network("0.0.0.0/0").Contains("localhost"));
  EXPECT_FALSE(Network("0.0.0.0/0").Contains("10.0.0.1:80"));
  EXPECT_FALSE(Network("::/0").Contains("[::1]"));
}

}  // namespace
}  // namespace ferry::config
