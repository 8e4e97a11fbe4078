#include "bus/broker_factory.hpp"

#include <gtest/gtest.h>

#include <optional>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::PostQueue;
using testing::TempDir;

TEST(CreateBroker, EmbeddedBackendOpensOnDataDirAndRegistersItsLogMetrics) {
  TempDir dir;
  config::Bus bus;
  bus.backend = config::BusBackend::kEmbedded;
  bus.data_dir = dir.path();
  observability::MetricsRegistry registry(1);
  PostQueue posts;
  BrokerEnvironment env;
  env.post = posts.Fn();
  env.metrics = &registry;
  auto broker = CreateBroker(bus, std::move(env));
  ASSERT_TRUE(broker) << broker.error().message();
  ASSERT_TRUE((*broker)->CreateQueue("q", QueueOptions{}));
  std::optional<Result<PublishResult>> published;
  Message message;
  message.data = "x";
  (*broker)->Publish(Destination::Queue("q"), message,
                     [&](Result<PublishResult> r) { published = std::move(r); });
  ASSERT_TRUE(posts.Await([&] { return published.has_value(); }));
  ASSERT_TRUE(*published) << published->error().message();
  const std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("ferry_bus_fsync_duration_seconds"), std::string::npos) << text;
  EXPECT_NE(text.find("ferry_bus_fsync_batch_records"), std::string::npos) << text;
  // The per-log gauges are the backend's too, set when the rates are sampled (each second).
  EXPECT_EQ(text.find("ferry_bus_fsync_batches{"), std::string::npos) << text;
  (*broker)->SampleRates();
  const std::string sampled = registry.RenderPrometheus();
  EXPECT_NE(sampled.find("ferry_bus_fsync_batches{log=\"queues/q/messages\"} 1"), std::string::npos)
      << sampled;
  EXPECT_NE(sampled.find("ferry_bus_fsync_records{log=\"queues/q/messages\"} 1"), std::string::npos)
      << sampled;
  EXPECT_NE(sampled.find("ferry_bus_fsync_batches{log=\"queues/q/state\"}"), std::string::npos)
      << sampled;
  // Only message logs have a max_age: only they get the retention series.
  EXPECT_NE(sampled.find("ferry_bus_retention_dropped_unconsumed{log=\"queues/q/messages\"} 0"),
            std::string::npos)
      << sampled;
  EXPECT_EQ(sampled.find("ferry_bus_retention_dropped_unconsumed{log=\"queues/q/state\"}"),
            std::string::npos)
      << sampled;
}

}  // namespace
}  // namespace ferry::bus
