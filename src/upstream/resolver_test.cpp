#include "upstream/resolver.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

namespace ferry::upstream {
namespace {

using Addresses = std::vector<std::string>;

TEST(SystemResolver, ReturnsIpv4LiteralAsIs) {
  SystemResolver resolver;
  EXPECT_EQ(resolver.Resolve("127.0.0.1"), Addresses{"127.0.0.1"});
}

TEST(SystemResolver, ReturnsIpv6LiteralAsIs) {
  SystemResolver resolver;
  EXPECT_EQ(resolver.Resolve("::1"), Addresses{"::1"});
  EXPECT_EQ(resolver.Resolve("2001:db8::7"), Addresses{"2001:db8::7"});
}

TEST(SystemResolver, ResolvesLocalhostToLoopbackWithoutDuplicates) {
  SystemResolver resolver;
  const auto addresses = resolver.Resolve("localhost");
  ASSERT_TRUE(addresses.has_value()) << addresses.error().message();
  for (const auto& address : *addresses) {
    EXPECT_TRUE(address == "127.0.0.1" || address == "::1") << address;
  }
  EXPECT_FALSE(addresses->empty());
  EXPECT_EQ(std::set<std::string>(addresses->begin(), addresses->end()).size(), addresses->size());
}

TEST(SystemResolver, UnknownNameIsUnavailable) {
  SystemResolver resolver;
  const auto addresses = resolver.Resolve("no-such-host.invalid");
  ASSERT_FALSE(addresses.has_value());
  EXPECT_EQ(addresses.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(addresses.error().message().find("no-such-host.invalid"), std::string::npos);
}

TEST(SystemResolver, EmptyHostIsInvalidArgument) {
  SystemResolver resolver;
  EXPECT_EQ(resolver.Resolve("").error().code(), ErrorCode::kInvalidArgument);
}

TEST(StaticResolver, ReturnsTheTableEntryWithoutDuplicates) {
  StaticResolver resolver(
      StaticResolver::Table{{"catalog.internal", {"10.0.0.1", "10.0.0.2", "10.0.0.1"}}});
  EXPECT_EQ(resolver.Resolve("catalog.internal"), (Addresses{"10.0.0.1", "10.0.0.2"}));
}

TEST(StaticResolver, UnknownNameIsUnavailable) {
  StaticResolver resolver;
  EXPECT_EQ(resolver.Resolve("catalog.internal").error().code(), ErrorCode::kUnavailable);
}

TEST(StaticResolver, SetReplacesAnEntry) {
  StaticResolver resolver(StaticResolver::Table{{"catalog.internal", {"10.0.0.1"}}});
  resolver.Set("catalog.internal", {"10.0.0.9"});
  EXPECT_EQ(resolver.Resolve("catalog.internal"), Addresses{"10.0.0.9"});
  resolver.Set("catalog.internal", {});
  EXPECT_EQ(resolver.Resolve("catalog.internal").error().code(), ErrorCode::kUnavailable);
}

TEST(StaticResolver, ReturnsLiteralsAsIs) {
  StaticResolver resolver;
  EXPECT_EQ(resolver.Resolve("10.1.2.3"), Addresses{"10.1.2.3"});
}

TEST(IsIpLiteral, AcceptsOnlyBareAddresses) {
  EXPECT_TRUE(IsIpLiteral("10.1.2.3"));
  EXPECT_TRUE(IsIpLiteral("fe80::1"));
  EXPECT_FALSE(IsIpLiteral("localhost"));
  EXPECT_FALSE(IsIpLiteral("[::1]"));
  EXPECT_FALSE(IsIpLiteral("10.1.2.3:80"));
  EXPECT_FALSE(IsIpLiteral(""));
}

}  // namespace
}  // namespace ferry::upstream
