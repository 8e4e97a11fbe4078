// Cost of one LoadBalancer::Pick per policy, 8 endpoints, on one worker's view.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "upstream/load_balancer.hpp"

namespace ferry::upstream {
namespace {

constexpr int kEndpoints = 8;

std::vector<EndpointInfo> Endpoints() {
  std::vector<EndpointInfo> endpoints;
  for (int i = 0; i < kEndpoints; ++i) {
    endpoints.push_back({"10.0.0." + std::to_string(i + 1) + ":8080"});
  }
  return endpoints;
}

// Realistic view: uneven in-flight counts; range(0) == 1 marks one endpoint unhealthy, which
// sends Random and LeastRequest through their slow path now and then.
std::vector<EndpointState> States(bool one_unhealthy) {
  std::vector<EndpointState> states;
  for (int i = 0; i < kEndpoints; ++i) {
    states.push_back({static_cast<std::uint32_t>((i * 7) % 5), true});
  }
  if (one_unhealthy) states[3].healthy = false;
  return states;
}

void BM_Pick(benchmark::State& state, config::LbPolicy policy) {
  const auto endpoints = Endpoints();
  const auto states = States(state.range(0) == 1);
  auto lb = std::move(*LoadBalancer::Create(policy, endpoints, 12345));
  std::uint64_t key = 0;
  for (auto _ : state) {
    // A new key per pick so that the hash ring's lookups are not all the same cache line.
    key += 0x9e3779b97f4a7c15ull;
    benchmark::DoNotOptimize(lb->Pick({states, key}));
  }
}

BENCHMARK_CAPTURE(BM_Pick, round_robin, config::LbPolicy::kRoundRobin)->Arg(0)->Arg(1);
BENCHMARK_CAPTURE(BM_Pick, least_request, config::LbPolicy::kLeastRequest)->Arg(0)->Arg(1);
BENCHMARK_CAPTURE(BM_Pick, random, config::LbPolicy::kRandom)->Arg(0)->Arg(1);
BENCHMARK_CAPTURE(BM_Pick, hash, config::LbPolicy::kHash)->Arg(0)->Arg(1);

// The caller's side of kHash: hashing a client address.
void BM_HashKey(benchmark::State& state) {
  const std::string address = "192.168.100.200";
  for (auto _ : state) {
    benchmark::DoNotOptimize(HashKey(address));
  }
}
BENCHMARK(BM_HashKey);

}  // namespace
}  // namespace ferry::upstream
