#include "upstream/load_balancer.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace ferry::upstream {
namespace {

using config::LbPolicy;

std::vector<EndpointInfo> Endpoints(int count) {
  std::vector<EndpointInfo> endpoints;
  for (int i = 0; i < count; ++i) endpoints.push_back({"127.0.0.1:" + std::to_string(7001 + i)});
  return endpoints;
}

std::unique_ptr<LoadBalancer> Make(LbPolicy policy, const std::vector<EndpointInfo>& endpoints,
                                   std::uint64_t seed = 42) {
  auto lb = LoadBalancer::Create(policy, endpoints, seed);
  EXPECT_TRUE(lb.has_value());
  return std::move(*lb);
}

// Hands out the given values in order; tests use it to choose which endpoints get drawn.
class FakeRandom final : public RandomSource {
 public:
  explicit FakeRandom(std::deque<std::uint64_t> values) : values_(std::move(values)) {}
  std::uint64_t Next() override {
    EXPECT_FALSE(values_.empty()) << "FakeRandom ran out of values";
    if (values_.empty()) return 0;
    const std::uint64_t v = values_.front();
    values_.pop_front();
    return v;
  }

 private:
  std::deque<std::uint64_t> values_;
};

std::vector<int> CountPicks(LoadBalancer& lb, const PickContext& context, int picks) {
  std::vector<int> counts(lb.size(), 0);
  for (int i = 0; i < picks; ++i) {
    const auto pick = lb.Pick(context);
    EXPECT_TRUE(pick.has_value());
    if (pick) ++counts[*pick];
  }
  return counts;
}

// The id of the endpoint the ring picks for each of `keys` keys.
std::vector<std::string> HashOwners(const std::vector<EndpointInfo>& endpoints, int keys,
                                    std::span<const EndpointState> state = {}) {
  auto lb = Make(LbPolicy::kHash, endpoints);
  std::vector<std::string> owners;
  for (int k = 0; k < keys; ++k) {
    const auto pick = lb->Pick({state, HashKey("user-" + std::to_string(k))});
    owners.push_back(pick ? endpoints[*pick].id : "");
  }
  return owners;
}

TEST(RoundRobin, CyclesThroughEveryEndpointInOrder) {
  auto lb = Make(LbPolicy::kRoundRobin, Endpoints(4));
  const std::size_t first = *lb->Pick({});
  for (std::size_t i = 1; i < 12; ++i) EXPECT_EQ(*lb->Pick({}), (first + i) % 4);
}

TEST(RoundRobin, WorkersStartAtDifferentEndpoints) {
  std::array<bool, 4> started_at{};
  for (std::uint64_t seed = 0; seed < 64; ++seed) {
    started_at[*Make(LbPolicy::kRoundRobin, Endpoints(4), seed)->Pick({})] = true;
  }
  EXPECT_EQ(started_at, (std::array<bool, 4>{true, true, true, true}));
}

TEST(RoundRobin, SkipsUnhealthyEndpoints) {
  auto lb = Make(LbPolicy::kRoundRobin, Endpoints(4));
  const std::vector<EndpointState> state = {{0, true}, {0, false}, {0, true}, {0, false}};
  EXPECT_EQ(CountPicks(*lb, {state}, 10), (std::vector<int>{5, 0, 5, 0}));
}

TEST(Random, SpreadsUniformly) {
  auto lb = Make(LbPolicy::kRandom, Endpoints(3));
  for (const int count : CountPicks(*lb, {}, 30000)) {
    EXPECT_GT(count, 9000);
    EXPECT_LT(count, 11000);
  }
}

TEST(Random, SpreadsUniformlyOverHealthyEndpointsOnly) {
  auto lb = Make(LbPolicy::kRandom, Endpoints(4));
  const std::vector<EndpointState> state = {{0, true}, {0, true}, {0, false}, {0, true}};
  const auto counts = CountPicks(*lb, {state}, 30000);
  EXPECT_EQ(counts[2], 0);
  for (const int i : {0, 1, 3}) {
    EXPECT_GT(counts[i], 9000);
    EXPECT_LT(counts[i], 11000);
  }
}

TEST(LeastRequest, NeverPicksTheBusiestWhenOthersAreIdle) {
  auto lb = Make(LbPolicy::kLeastRequest, Endpoints(4));
  const std::vector<EndpointState> state = {{100, true}, {0, true}, {0, true}, {0, true}};
  const auto counts = CountPicks(*lb, {state}, 30000);
  EXPECT_EQ(counts[0], 0);  // two distinct draws: the busy one always meets an idle one
  for (const int i : {1, 2, 3}) EXPECT_GT(counts[i], 9000);
}

TEST(LeastRequest, PicksInProportionToRankOfLoad) {
  auto lb = Make(LbPolicy::kLeastRequest, Endpoints(4));
  const std::vector<EndpointState> state = {{30, true}, {0, true}, {20, true}, {10, true}};
  const auto counts = CountPicks(*lb, {state}, 30000);
  // The k-th least loaded of 4 wins in (4-k) of the 6 pairs: 3/6, 2/6, 1/6, 0.
  EXPECT_NEAR(counts[1], 15000, 1000);
  EXPECT_NEAR(counts[3], 10000, 1000);
  EXPECT_NEAR(counts[2], 5000, 1000);
  EXPECT_EQ(counts[0], 0);
}

TEST(LeastRequest, TieGoesToTheFirstDraw) {
  const auto endpoints = Endpoints(2);
  // With two endpoints the first draw decides the pair: 2^63 draws index 1, 0 draws index 0.
  auto lb = LoadBalancer::Create(
      LbPolicy::kLeastRequest, endpoints,
      std::make_unique<FakeRandom>(std::deque<std::uint64_t>{1ull << 63, 0, 0, 0}));
  ASSERT_TRUE(lb.has_value());
  const std::vector<EndpointState> state = {{3, true}, {3, true}};
  EXPECT_EQ((*lb)->Pick({state}), 1u);
  EXPECT_EQ((*lb)->Pick({state}), 0u);
}

TEST(LeastRequest, SkipsUnhealthyEvenIfIdle) {
  auto lb = Make(LbPolicy::kLeastRequest, Endpoints(4));
  const std::vector<EndpointState> state = {{0, false}, {5, true}, {5, true}, {50, true}};
  const auto counts = CountPicks(*lb, {state}, 30000);
  EXPECT_EQ(counts[0], 0);
  EXPECT_EQ(counts[3], 0);  // among the healthy three it is always the busier of a pair
  EXPECT_NEAR(counts[1], 15000, 1000);
  EXPECT_NEAR(counts[2], 15000, 1000);
}

TEST(LeastRequest, SingleHealthyEndpointIsPicked) {
  auto lb = Make(LbPolicy::kLeastRequest, Endpoints(3));
  const std::vector<EndpointState> state = {{0, false}, {9, true}, {0, false}};
  EXPECT_EQ(CountPicks(*lb, {state}, 100), (std::vector<int>{0, 100, 0}));
}

TEST(Hash, SameKeyGivesSameEndpointOnEveryWorker) {
  const auto endpoints = Endpoints(4);
  auto worker_a = Make(LbPolicy::kHash, endpoints, 1);
  auto worker_b = Make(LbPolicy::kHash, endpoints, 2);
  for (int k = 0; k < 1000; ++k) {
    const std::uint64_t key = HashKey("client-" + std::to_string(k));
    const auto pick = worker_a->Pick({{}, key});
    ASSERT_TRUE(pick.has_value());
    EXPECT_EQ(worker_a->Pick({{}, key}), pick);
    EXPECT_EQ(worker_b->Pick({{}, key}), pick);
  }
}

TEST(Hash, DifferentKeysSpreadOverEndpoints) {
  const auto endpoints = Endpoints(4);
  std::map<std::string, int> counts;
  for (const auto& owner : HashOwners(endpoints, 10000)) ++counts[owner];
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [id, count] : counts) {
    EXPECT_GT(count, 1500) << id;
    EXPECT_LT(count, 3500) << id;
  }
}

TEST(Hash, AddingAFifthEndpointMovesAboutAFifthOfKeysAllToIt) {
  const auto four = Endpoints(4);
  const auto five = Endpoints(5);
  const auto before = HashOwners(four, 10000);
  const auto after = HashOwners(five, 10000);
  int moved = 0;
  for (std::size_t k = 0; k < before.size(); ++k) {
    if (before[k] == after[k]) continue;
    ++moved;
    EXPECT_EQ(after[k], five[4].id);
  }
  EXPECT_GT(moved, 1000);
  EXPECT_LT(moved, 3500);
}

TEST(Hash, RemovingAnEndpointMovesOnlyItsKeys) {
  const auto five = Endpoints(5);
  auto four = five;
  four.erase(four.begin() + 2);  // indices shift; owners are compared by id
  const auto before = HashOwners(five, 10000);
  const auto after = HashOwners(four, 10000);
  int moved = 0;
  for (std::size_t k = 0; k < before.size(); ++k) {
    if (before[k] == five[2].id) {
      ++moved;
      EXPECT_NE(after[k], five[2].id);
    } else {
      EXPECT_EQ(after[k], before[k]);
    }
  }
  EXPECT_GT(moved, 0);
}

TEST(Hash, UnhealthyEndpointsKeysFallToTheNextOnTheRing) {
  const auto four = Endpoints(4);
  auto three = four;
  three.erase(three.begin() + 1);
  const std::vector<EndpointState> state = {{0, true}, {0, false}, {0, true}, {0, true}};
  // Skipping an unhealthy endpoint must move exactly the keys its removal would move.
  EXPECT_EQ(HashOwners(four, 10000, state), HashOwners(three, 10000));
}

TEST(Hash, DoesNotDependOnEndpointOrder) {
  const auto endpoints = Endpoints(6);
  const std::vector<EndpointInfo> reversed(endpoints.rbegin(), endpoints.rend());
  EXPECT_EQ(HashOwners(endpoints, 2000), HashOwners(reversed, 2000));
}

TEST(HashKey, IsStableAcrossReleases) {
  // Every Ferry node must map a key to the same endpoint: changing HashKey remaps sessions.
  // Values computed independently (FNV-1a 64, then the splitmix64 finalizer).
  EXPECT_EQ(HashKey(""), 0xf52a15e9a9b5e89bull);
  EXPECT_EQ(HashKey("10.1.2.3"), 0xbedf7c9a597ef9aeull);
}

TEST(HashKey, SimilarInputsDiffer) {
  EXPECT_NE(HashKey("user-1"), HashKey("user-2"));
  EXPECT_NE(HashKey("ab"), HashKey("ba"));
}

class EveryPolicy : public ::testing::TestWithParam<LbPolicy> {};

TEST_P(EveryPolicy, NoHealthyEndpointMeansNoPick) {
  auto lb = Make(GetParam(), Endpoints(3));
  const std::vector<EndpointState> state(3, EndpointState{0, false});
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(lb->Pick({state, HashKey(std::to_string(i))}), std::nullopt);
}

TEST_P(EveryPolicy, EmptyEndpointListMeansNoPick) {
  auto lb = Make(GetParam(), {});
  EXPECT_EQ(lb->Pick({}), std::nullopt);
}

TEST_P(EveryPolicy, SkipsAnUnhealthyEndpoint) {
  auto lb = Make(GetParam(), Endpoints(3));
  const std::vector<EndpointState> state = {{0, true}, {0, false}, {0, true}};
  for (int i = 0; i < 300; ++i) EXPECT_NE(lb->Pick({state, HashKey(std::to_string(i))}), 1u);
}

TEST_P(EveryPolicy, RejectsDuplicateEndpointIds) {
  const std::vector<EndpointInfo> endpoints = {{"10.0.0.1:80"}, {"10.0.0.2:80"}, {"10.0.0.1:80"}};
  const auto lb = LoadBalancer::Create(GetParam(), endpoints, 1);
  ASSERT_FALSE(lb.has_value());
  EXPECT_EQ(lb.error().code(), ErrorCode::kInvalidArgument);
}

TEST_P(EveryPolicy, ReportsItsPolicy) {
  EXPECT_EQ(Make(GetParam(), Endpoints(2))->policy(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(LoadBalancer, EveryPolicy,
                         ::testing::Values(LbPolicy::kRoundRobin, LbPolicy::kLeastRequest,
                                           LbPolicy::kRandom, LbPolicy::kHash));

TEST(Xoshiro256, SameSeedSameSequence) {
  Xoshiro256 a(7);
  Xoshiro256 b(7);
  Xoshiro256 c(8);
  bool c_differs = false;
  for (int i = 0; i < 100; ++i) {
    const std::uint64_t x = a.Next();
    EXPECT_EQ(x, b.Next());
    c_differs |= x != c.Next();
  }
  EXPECT_TRUE(c_differs);
}

}  // namespace
}  // namespace ferry::upstream
