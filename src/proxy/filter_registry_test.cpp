#include "proxy/filter_registry.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "observability/metrics_registry.hpp"
#include "proxy/snapshot.hpp"
#include "upstream/resolver.hpp"

namespace ferry::proxy {
namespace {

// Reads `limit` bytes of body; decides at once.
class Reader final : public Filter {
 public:
  Reader(std::string name, std::uint64_t limit) : name_(std::move(name)), limit_(limit) {}
  std::string_view name() const override { return name_; }
  std::uint64_t body_limit() const override { return limit_; }
  Verdict OnRequest(FilterContext&) const override { return Verdict::kContinue; }

 private:
  std::string name_;
  std::uint64_t limit_;
};

// Only on routes whose name starts with "auth".
std::unique_ptr<const Filter> MakeAuthOnly(const config::Route& r, const config::Config&) {
  return r.name.starts_with("auth") ? std::make_unique<Reader>("auth", 0) : nullptr;
}
std::unique_ptr<const Filter> MakeBig(const config::Route&, const config::Config&) {
  return std::make_unique<Reader>("big", 4096);
}
std::unique_ptr<const Filter> MakeSmall(const config::Route& r, const config::Config&) {
  return r.name == "auth-upload" ? std::make_unique<Reader>("small", 512) : nullptr;
}

constexpr FilterFactory kFactories[] = {
    {"auth", &MakeAuthOnly}, {"big", &MakeBig}, {"small", &MakeSmall}};

std::shared_ptr<const config::Config> Load() {
  auto loaded = config::LoadString(R"(
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - {name: auth-upload, match: {prefix: /up/}, service: s}
      - {name: auth-api, match: {prefix: /api/}, service: s}
      - {match: {prefix: /}, service: s}
services:
  s: {endpoints: [127.0.0.1:1]}
)",
                                   "t.yaml");
  EXPECT_TRUE(loaded) << loaded.error().message();
  return *loaded;
}

std::vector<std::string_view> Names(const FilterChain& chain) {
  std::vector<std::string_view> names;
  for (const auto& f : chain.filters()) names.push_back(f->name());
  return names;
}

TEST(FilterRegistry, EveryRouteGetsForwardingHeadersByDefault) {
  auto config = Load();
  for (const config::Route& route : config->listeners[0].routes) {
    const FilterChain chain = BuildFilterChain(route, *config);
    EXPECT_EQ(Names(chain), std::vector<std::string_view>{"forwarding"}) << route.name;
    EXPECT_EQ(chain.body_limit(), 0u);
  }
}

TEST(FilterRegistry, ChainsFollowEachRoutesConfigInTheFactoriesOrder) {
  auto config = Load();
  const auto& routes = config->listeners[0].routes;
  EXPECT_EQ(Names(BuildFilterChain(routes[0], *config, kFactories)),
            (std::vector<std::string_view>{"auth", "big", "small"}));
  EXPECT_EQ(Names(BuildFilterChain(routes[1], *config, kFactories)),
            (std::vector<std::string_view>{"auth", "big"}));
  EXPECT_EQ(Names(BuildFilterChain(routes[2], *config, kFactories)),
            (std::vector<std::string_view>{"big"}));
}

TEST(FilterRegistry, TheSmallestBodyLimitOfTheReadersBoundsTheBody) {
  auto config = Load();
  const auto& routes = config->listeners[0].routes;
  const FilterChain upload = BuildFilterChain(routes[0], *config, kFactories);
  EXPECT_EQ(upload.body_limit(), 512u);
  EXPECT_EQ(upload.body_reader()->name(), "small");
  const FilterChain api = BuildFilterChain(routes[1], *config, kFactories);
  EXPECT_EQ(api.body_limit(), 4096u);
  EXPECT_EQ(api.body_reader()->name(), "big");
}

TEST(FilterRegistry, SnapshotHoldsEachRoutesChain) {
  auto config = Load();
  upstream::StaticResolver resolver;
  observability::MetricsRegistry registry(1);
  ProxyMetrics metrics(registry);
  auto snapshot = BuildSnapshot(config, resolver, metrics, 1, kFactories);
  const ListenerPlan& plan = snapshot->listeners.at("main");
  ASSERT_EQ(plan.route_plans.size(), 3u);
  EXPECT_EQ(Names(plan.route_plans[0].filters).size(), 3u);
  EXPECT_EQ(Names(plan.route_plans[2].filters), std::vector<std::string_view>{"big"});
  EXPECT_EQ(plan.route_plans[0].service, &snapshot->services.at("s"));
  // The built-in chain when none is given.
  auto builtin = BuildSnapshot(config, resolver, metrics, 2);
  EXPECT_EQ(Names(builtin->listeners.at("main").route_plans[1].filters),
            std::vector<std::string_view>{"forwarding"});
}

}  // namespace
}  // namespace ferry::proxy
