#include "resilience/service_state.hpp"

#include <gtest/gtest.h>

namespace ferry::resilience {
namespace {

using namespace std::chrono_literals;

config::Config TwoServices() {
  config::Config c;
  config::Policy guarded;
  guarded.name = "guarded";
  guarded.circuit_breaker = config::CircuitBreakerPolicy{};
  guarded.circuit_breaker->min_requests = 2;
  guarded.concurrency = config::ConcurrencyPolicy{1, 0};
  c.policies["default"] = config::Policy{};
  c.policies["guarded"] = guarded;
  c.services["a"].name = "a";
  c.services["a"].policy = "guarded";
  c.services["b"].name = "b";
  return c;
}

TEST(ServiceRegistry, ConfigureAppliesEachServicesOwnPolicy) {
  FakeClock clock;
  ServiceRegistry registry(nullptr, clock);
  registry.Configure(TwoServices());
  auto a = registry.Get("a");
  auto b = registry.Get("b");
  EXPECT_TRUE(a->breaker.policy().has_value());
  EXPECT_FALSE(b->breaker.policy().has_value());
  auto held = a->limiter.TryAcquire();
  ASSERT_TRUE(held && held->holds_slot());
  EXPECT_FALSE(a->limiter.TryAcquire());  // max 1
  EXPECT_TRUE(b->limiter.TryAcquire());   // no limit
}

TEST(ServiceRegistry, AReloadKeepsTheStateOfAServiceThatStays) {
  FakeClock clock;
  ServiceRegistry registry(nullptr, clock);
  registry.Configure(TwoServices());
  auto a = registry.Get("a");
  for (int i = 0; i < 2; ++i) a->breaker.Record(a->breaker.Allow(), true);
  ASSERT_EQ(a->breaker.state(), BreakerState::kOpen);
  registry.Configure(TwoServices());
  EXPECT_EQ(registry.Get("a").get(), a.get());
  EXPECT_EQ(a->breaker.state(), BreakerState::kOpen);
}

TEST(ServiceRegistry, BreakersListsTheConfigsServices) {
  ServiceRegistry registry;
  const auto breakers = registry.Breakers(TwoServices());
  ASSERT_EQ(breakers.size(), 2u);
  EXPECT_EQ(breakers[0]->service(), "a");
  EXPECT_EQ(breakers[1]->service(), "b");
}

}  // namespace
}  // namespace ferry::resilience
