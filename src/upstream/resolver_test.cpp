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

TEST(LastGoodResolver, KeepsTheLastAnswerWhenANameStopsResolving) {
  auto dns = std::make_shared<StaticResolver>(StaticResolver::Table{{"svc", {"10.0.0.1"}}});
  LastGoodResolver resolver(dns);
  EXPECT_EQ(*resolver.Resolve("svc"), std::vector<std::string>{"10.0.0.1"});
  dns->Set("svc", {});  // the name stops resolving
  auto kept = resolver.Resolve("svc");
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(*kept, std::vector<std::string>{"10.0.0.1"});
  dns->Set("svc", {"10.0.0.2", "10.0.0.3"});  // a new answer replaces it
  EXPECT_EQ(*resolver.Resolve("svc"), (std::vector<std::string>{"10.0.0.2", "10.0.0.3"}));
  dns->Set("svc", {});
  EXPECT_EQ(*resolver.Resolve("svc"), (std::vector<std::string>{"10.0.0.2", "10.0.0.3"}));
}

TEST(LastGoodResolver, ANameThatNeverResolvedStillFails) {
  LastGoodResolver resolver(std::make_shared<StaticResolver>());
  auto r = resolver.Resolve("nowhere");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(resolver.Resolve("").error().code(), ErrorCode::kInvalidArgument);
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
