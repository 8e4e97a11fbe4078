// The rates in a queue's, topic's and subscription's stats (per second over the last minute),
// on a fake clock sampled as the bus thread does, once a second.
#include <gtest/gtest.h>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");

class StatsRatesTest : public ::testing::Test {
 protected:
  // Moves the fake clock a second at a time, sampling after each, as the maintenance timer does.
  void Pass(int seconds) {
    for (int i = 0; i < seconds; ++i) {
      h.Advance(1s);
      h.broker().SampleRates();
    }
  }
  InboxRates QueueRates() {
    auto s = h.broker().GetQueueStats("q");
    EXPECT_TRUE(s);
    return s ? s->inbox.rates : InboxRates{};
  }
  std::vector<std::string> Receipts(const std::vector<Delivery>& got) {
    std::vector<std::string> out;
    for (const Delivery& d : got) out.push_back(d.receipt);
    return out;
  }
  Harness h;
};

TEST_F(StatsRatesTest, QueueRatesFollowItsTrafficAndFallToZeroAMinuteLater) {
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  const InboxRates idle = QueueRates();
  EXPECT_EQ(idle.publish + idle.deliver + idle.ack + idle.nack, 0.0);

  for (int i = 0; i < 30; ++i) h.MustPublish("q", Msg("m"));
  auto first = h.Receive(kQ, 10);
  ASSERT_EQ(first.size(), 10u);
  const std::vector<std::string> receipts = Receipts(first);
  h.Ack(kQ, {receipts.begin(), receipts.begin() + 6});
  h.Nack(kQ, {receipts.begin() + 6, receipts.end()}, BusDuration(0));
  auto again = h.Receive(kQ, 4);
  ASSERT_EQ(again.size(), 4u);
  EXPECT_EQ(again[0].attempt, 2u);
  h.Ack(kQ, Receipts(again));
  // All of it within the meter's first second: shown over one second at once.
  EXPECT_DOUBLE_EQ(QueueRates().publish, 30.0);

  Pass(10);
  InboxRates r = QueueRates();
  EXPECT_DOUBLE_EQ(r.publish, 3.0);  // 30 in 10 s
  EXPECT_DOUBLE_EQ(r.deliver, 1.4);  // 10 first deliveries and 4 redeliveries
  EXPECT_DOUBLE_EQ(r.redeliver, 0.4);
  EXPECT_DOUBLE_EQ(r.ack, 1.0);
  EXPECT_DOUBLE_EQ(r.nack, 0.4);
  EXPECT_DOUBLE_EQ(r.dead_letter, 0.0);

  Pass(40);  // 50 s since the start: still in the window
  EXPECT_DOUBLE_EQ(QueueRates().publish, 0.6);
  Pass(20);  // 70 s: a minute after the traffic, none of it is left
  r = QueueRates();
  EXPECT_EQ(r.publish + r.deliver + r.redeliver + r.ack + r.nack + r.dead_letter, 0.0);
  // The counts stay.
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.published, 30u);
}

TEST_F(StatsRatesTest, DeadLetterRate) {
  QueueOptions options = FastQueue();
  options.delivery.max_deliveries = 1;
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  for (int i = 0; i < 5; ++i) h.MustPublish("q", Msg("poison"));
  h.Nack(kQ, Receipts(h.Receive(kQ, 5)));
  Pass(5);
  const InboxRates r = QueueRates();
  EXPECT_DOUBLE_EQ(r.dead_letter, 1.0);
  EXPECT_DOUBLE_EQ(r.nack, 1.0);
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.dead_letters, 5u);
}

TEST_F(StatsRatesTest, TopicPublishRateAndEachSubscriptionsOwnRates) {
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  SubscriptionOptions o;
  o.delivery = FastQueue().delivery;
  ASSERT_TRUE(h.broker().CreateSubscription("t", "busy", o));
  ASSERT_TRUE(h.broker().CreateSubscription("t", "idle", o));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(h.Publish(Destination::Topic("t"), Msg("e")));
  const Inbox busy = Inbox::Subscription("t", "busy");
  h.Ack(busy, Receipts(h.Receive(busy, 20)));
  Pass(4);

  auto topic = h.broker().GetTopicStats("t");
  ASSERT_TRUE(topic);
  EXPECT_DOUBLE_EQ(topic->publish_rate, 5.0);
  ASSERT_EQ(topic->subscriptions.size(), 2u);
  const InboxRates& b = topic->subscriptions[0].inbox.rates;
  const InboxRates& i = topic->subscriptions[1].inbox.rates;
  EXPECT_EQ(topic->subscriptions[0].name, "busy");
  EXPECT_DOUBLE_EQ(b.deliver, 5.0);
  EXPECT_DOUBLE_EQ(b.ack, 5.0);
  EXPECT_EQ(i.deliver + i.ack, 0.0);
  // A subscription stores nothing itself: no publish rate of its own.
  EXPECT_EQ(b.publish, 0.0);
  auto one = h.broker().GetSubscriptionStats("t", "busy");
  ASSERT_TRUE(one);
  EXPECT_DOUBLE_EQ(one->inbox.rates.ack, 5.0);
}

}  // namespace
}  // namespace ferry::bus
