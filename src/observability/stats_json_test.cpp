#include "observability/stats_json.hpp"

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include "observability/metrics_registry.hpp"

namespace ferry::observability {
namespace {

TEST(StatsJsonTest, HasTheDocumentedShape) {
  MetricsRegistry registry(2);
  registry.AddCounter("requests_total", "Requests.", {"route"}).value()->Get("api").Add(1, 3);
  auto* h = registry.AddHistogram("latency_seconds", "Latency.", {}, {0.1, 1}).value();
  h->Get().Observe(0, 0.0625);
  h->Get().Observe(1, 5);

  const boost::json::value expected = boost::json::parse(R"({
    "requests_total": {"type": "counter", "help": "Requests.",
                       "series": [{"labels": {"route": "api"}, "value": 3}]},
    "latency_seconds": {"type": "histogram", "help": "Latency.",
                        "series": [{"labels": {}, "count": 2, "sum": 5.0625,
                                    "buckets": [{"le": 0.1, "count": 1},
                                                {"le": 1, "count": 1},
                                                {"le": "+Inf", "count": 2}]}]}
  })");
  EXPECT_EQ(boost::json::value(registry.RenderJson()), expected)
      << boost::json::serialize(registry.RenderJson());
}

TEST(StatsJsonTest, WholeNumbersAreJsonIntegers) {
  MetricsRegistry registry(1);
  ASSERT_TRUE(registry.AddCallbackGauge("g", "g", [] { return 1024.0; }));
  EXPECT_EQ(boost::json::serialize(registry.RenderJson()),
            R"({"g":{"type":"gauge","help":"g","series":[{"labels":{},"value":1024}]}})");
}

TEST(StatsJsonTest, NonFiniteValuesBecomeNull) {
  MetricsRegistry registry(1);
  ASSERT_TRUE(
      registry.AddCallbackGauge("g", "g", [] { return std::numeric_limits<double>::quiet_NaN(); }));
  const boost::json::object stats = registry.RenderJson();
  EXPECT_TRUE(stats.at("g").at("series").at(0).at("value").is_null());
}

}  // namespace
}  // namespace ferry::observability
