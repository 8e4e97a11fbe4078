// Push re-resolution: a new DNS answer keeps the endpoints (and their pools) that stay, adds the
// new ones, drops the ones that went away, and a name that fails to resolve keeps its addresses.
#include "bus/api/push_endpoints.hpp"

#include <gtest/gtest.h>

namespace ferry::bus {
namespace {

struct FakeEndpoint {
  explicit FakeEndpoint(const PushAddress& a) : id(a.id) {}
  std::string id;
};

std::vector<std::string> Ids(const std::vector<PushAddress>& addresses) {
  std::vector<std::string> out;
  for (const auto& a : addresses) out.push_back(a.id);
  return out;
}

std::vector<std::shared_ptr<FakeEndpoint>> Merge(
    const std::vector<std::shared_ptr<FakeEndpoint>>& current,
    const std::vector<PushAddress>& addresses, int* made) {
  return MergeEndpoints(current, addresses, [made](const PushAddress& a) {
    ++*made;
    return std::make_shared<FakeEndpoint>(a);
  });
}

TEST(PushEndpointsTest, ResolvesEachNameInConfigOrderWithoutDuplicates) {
  upstream::StaticResolver resolver({{"a.svc", {"10.0.0.1", "10.0.0.2"}}, {"b.svc", {"10.0.0.2"}}});
  const std::vector<config::Address> endpoints{{"a.svc", 80}, {"b.svc", 80}, {"b.svc", 81}};
  const auto got = CombineResolved(endpoints, ResolveHosts(resolver, endpoints));
  EXPECT_EQ(Ids(got), (std::vector<std::string>{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.2:81"}));
  EXPECT_EQ(got[2].ip, "10.0.0.2");
  EXPECT_EQ(got[2].port, 81);
}

TEST(PushEndpointsTest, ANameThatFailsToResolveKeepsItsLastAddresses) {
  // As the bus resolves: through a LastGoodResolver.
  auto dns = std::make_shared<upstream::StaticResolver>(
      upstream::StaticResolver::Table{{"a.svc", {"10.0.0.1"}}, {"b.svc", {"10.0.0.9"}}});
  upstream::LastGoodResolver resolver(dns);
  const std::vector<config::Address> endpoints{{"a.svc", 80}, {"b.svc", 80}};
  (void)CombineResolved(endpoints, ResolveHosts(resolver, endpoints));
  dns->Set("a.svc", {});  // no answer this round
  dns->Set("b.svc", {"10.0.0.8"});
  const auto got = CombineResolved(endpoints, ResolveHosts(resolver, endpoints));
  EXPECT_EQ(Ids(got), (std::vector<std::string>{"10.0.0.1:80", "10.0.0.8:80"}));
}

TEST(PushEndpointsTest, ANameNeverResolvedGivesNoEndpoint) {
  upstream::StaticResolver resolver(upstream::StaticResolver::Table{{"a.svc", {"10.0.0.1"}}});
  const std::vector<config::Address> endpoints{{"gone.svc", 80}, {"a.svc", 80}};
  const auto got = CombineResolved(endpoints, ResolveHosts(resolver, endpoints));
  EXPECT_EQ(Ids(got), (std::vector<std::string>{"10.0.0.1:80"}));
}

TEST(PushEndpointsTest, MergeKeepsTheEndpointsThatStayAndDropsTheOthers) {
  int made = 0;
  const auto first =
      Merge({}, {{"10.0.0.1:80", "10.0.0.1", 80}, {"10.0.0.2:80", "10.0.0.2", 80}}, &made);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_EQ(made, 2);
  // 10.0.0.1 went away, 10.0.0.3 is new, 10.0.0.2 stays: the same object (so the same pool).
  const auto second =
      Merge(first, {{"10.0.0.2:80", "10.0.0.2", 80}, {"10.0.0.3:80", "10.0.0.3", 80}}, &made);
  ASSERT_EQ(second.size(), 2u);
  EXPECT_EQ(made, 3);
  EXPECT_EQ(second[0].get(), first[1].get());
  EXPECT_EQ(second[1]->id, "10.0.0.3:80");
  EXPECT_NE(second[1].get(), first[0].get());
  // The same answer again changes nothing.
  const auto third =
      Merge(second, {{"10.0.0.2:80", "10.0.0.2", 80}, {"10.0.0.3:80", "10.0.0.3", 80}}, &made);
  EXPECT_EQ(made, 3);
  EXPECT_EQ(third, second);
}

}  // namespace
}  // namespace ferry::bus
