#include "observability/prometheus_text.hpp"

#include <gtest/gtest.h>

#include "observability/metrics_registry.hpp"

namespace ferry::observability {
namespace {

TEST(PrometheusTextTest, RendersASmallRegistryExactly) {
  MetricsRegistry registry(2);
  auto* requests =
      registry.AddCounter("ferry_requests_total", "Requests served.", {"route", "code"}).value();
  requests->Get("api", "200").Add(0, 3);
  requests->Get("api", "200").Add(1, 2);
  requests->Get("api", "503").Add(1, 1);
  auto* connections =
      registry.AddGauge("ferry_open_connections", "Open downstream connections.").value();
  connections->Get().Add(0, 4);
  connections->Get().Sub(1, 1);
  auto* latency = registry.AddHistogram("ferry_latency_seconds", "Latency.", {}, {0.1, 1}).value();
  latency->Get().Observe(0, 0.0625);
  latency->Get().Observe(1, 0.5);
  latency->Get().Observe(registry.main_slot(), 2);
  ASSERT_TRUE(registry.AddCallbackGauge("ferry_up", "Always 1.", [] { return 1.0; }));

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP ferry_requests_total Requests served.\n"
            "# TYPE ferry_requests_total counter\n"
            "ferry_requests_total{route=\"api\",code=\"200\"} 5\n"
            "ferry_requests_total{route=\"api\",code=\"503\"} 1\n"
            "# HELP ferry_open_connections Open downstream connections.\n"
            "# TYPE ferry_open_connections gauge\n"
            "ferry_open_connections 3\n"
            "# HELP ferry_latency_seconds Latency.\n"
            "# TYPE ferry_latency_seconds histogram\n"
            "ferry_latency_seconds_bucket{le=\"0.1\"} 1\n"
            "ferry_latency_seconds_bucket{le=\"1\"} 2\n"
            "ferry_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "ferry_latency_seconds_sum 2.5625\n"
            "ferry_latency_seconds_count 3\n"
            "# HELP ferry_up Always 1.\n"
            "# TYPE ferry_up gauge\n"
            "ferry_up 1\n");
}

TEST(PrometheusTextTest, HistogramBucketsAreCumulativeAndLeComesLast) {
  MetricsRegistry registry(1);
  auto* h = registry.AddHistogram("h_seconds", "h", {"route"}, {1, 2, 3}).value();
  Histogram& series = h->Get("r");
  series.Observe(0, 0.5);
  series.Observe(0, 2.5);
  series.Observe(0, 2.6);
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("h_seconds_bucket{route=\"r\",le=\"1\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_bucket{route=\"r\",le=\"2\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_bucket{route=\"r\",le=\"3\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_bucket{route=\"r\",le=\"+Inf\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_count{route=\"r\"} 3\n"), std::string::npos) << text;
}

TEST(PrometheusTextTest, EscapesBackslashQuoteAndNewlineInLabelValues) {
  std::string out;
  AppendEscapedLabelValue("a\\b\"c\nd\te", out);
  EXPECT_EQ(out, "a\\\\b\\\"c\\nd\te");
}

TEST(PrometheusTextTest, EscapesLabelValuesInRenderedSeries) {
  MetricsRegistry registry(1);
  registry.AddCounter("c_total", "c", {"path"}).value()->Get("/a\"b\\").Add(0, 1);
  EXPECT_NE(registry.RenderPrometheus().find("c_total{path=\"/a\\\"b\\\\\"} 1\n"),
            std::string::npos);
}

TEST(PrometheusTextTest, EscapesBackslashAndNewlineButNotQuotesInHelp) {
  std::string out;
  AppendEscapedHelp("say \"hi\"\\\nbye", out);
  EXPECT_EQ(out, "say \"hi\"\\\\\\nbye");
}

TEST(PrometheusTextTest, RendersSpecialFloatValues) {
  std::string out;
  AppendSampleValue(std::numeric_limits<double>::infinity(), out);
  out += ' ';
  AppendSampleValue(-std::numeric_limits<double>::infinity(), out);
  out += ' ';
  AppendSampleValue(std::numeric_limits<double>::quiet_NaN(), out);
  out += ' ';
  AppendSampleValue(0.0005, out);
  EXPECT_EQ(out, "+Inf -Inf NaN 0.0005");
}

TEST(PrometheusTextTest, FamilyWithoutSeriesRendersOnlyHelpAndType) {
  MetricsRegistry registry(1);
  ASSERT_TRUE(registry.AddCounter("c_total", "c", {"route"}));
  EXPECT_EQ(registry.RenderPrometheus(), "# HELP c_total c\n# TYPE c_total counter\n");
}

}  // namespace
}  // namespace ferry::observability
