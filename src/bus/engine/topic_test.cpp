// Topics: fan-out to subscriptions with their own acks, filters, replay from an offset or a
// time, subscriptions that persist; and retention that never drops what is still needed.
#include <gtest/gtest.h>

#include "bus/engine/broker_test_support.hpp"
#include "bus/engine/state_record.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

Message Event(std::string data, std::string type, std::string source = "/orders") {
  Message m = Msg(std::move(data));
  m.type = std::move(type);
  m.source = std::move(source);
  return m;
}

class TopicTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h.broker().CreateTopic("t", {})); }
  void Sub(const std::string& name, SubscriptionFilter filter = {}) {
    SubscriptionOptions o;
    o.delivery = FastQueue().delivery;
    o.filter = std::move(filter);
    ASSERT_TRUE(h.broker().CreateSubscription("t", name, o));
  }
  PublishResult Emit(Message m) {
    auto r = h.Publish(Destination::Topic("t"), std::move(m));
    EXPECT_TRUE(r) << r.error().message();
    return r.value_or(PublishResult{});
  }
  std::vector<std::string> Data(const std::string& sub) {
    std::vector<std::string> out;
    for (const auto& d : h.Receive(Inbox::Subscription("t", sub))) out.push_back(d.message.data);
    return out;
  }
  Harness h;
};

TEST_F(TopicTest, FanOutWithIndependentAcks) {
  Sub("a");
  Sub("b");
  Emit(Event("e1", "order.created"));
  auto a = h.Receive(Inbox::Subscription("t", "a"));
  auto b = h.Receive(Inbox::Subscription("t", "b"));
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(h.Ack(Inbox::Subscription("t", "a"), {a[0].receipt}), std::vector{SettleOutcome::kOk});
  // b's receipt means nothing to a, and b's delivery is untouched by a's ack.
  EXPECT_NE(h.Ack(Inbox::Subscription("t", "a"), {b[0].receipt}), std::vector{SettleOutcome::kOk});
  h.Advance(10s);
  h.Advance(1s);
  EXPECT_TRUE(Data("a").empty());
  EXPECT_EQ(Data("b"), std::vector<std::string>{"e1"});
  auto stats = h.broker().GetTopicStats("t");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->published, 1u);
  ASSERT_EQ(stats->subscriptions.size(), 2u);
  EXPECT_EQ(stats->subscriptions[0].inbox.acked, 1u);
  EXPECT_EQ(stats->subscriptions[1].inbox.redelivered, 1u);
}

TEST_F(TopicTest, OneSubscriptionsStatsAndOptions) {
  Sub("a");
  Sub("b", {.type = "order.*"});
  Emit(Event("e1", "order.created"));
  Emit(Event("e2", "user.created"));
  auto a = h.Receive(Inbox::Subscription("t", "a"));
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(h.Ack(Inbox::Subscription("t", "a"), {a[0].receipt}), std::vector{SettleOutcome::kOk});
  auto sa = h.broker().GetSubscriptionStats("t", "a");
  auto sb = h.broker().GetSubscriptionStats("t", "b");
  ASSERT_TRUE(sa);
  ASSERT_TRUE(sb);
  EXPECT_EQ(sa->name, "a");
  EXPECT_EQ((std::pair{sa->inbox.acked, sa->inbox.in_flight}), (std::pair{1ul, 1ul}));
  EXPECT_EQ((std::pair{sb->inbox.delivered, sb->inbox.ready}), (std::pair{0ul, 1ul}));
  auto ob = h.broker().GetSubscriptionOptions("t", "b");
  ASSERT_TRUE(ob);
  EXPECT_EQ(ob->filter.type, "order.*");
  EXPECT_EQ(ob->delivery.max_deliveries, FastQueue().delivery.max_deliveries);
  EXPECT_EQ(h.broker().GetSubscriptionStats("t", "zz").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(h.broker().GetSubscriptionOptions("nope", "a").error().code(), ErrorCode::kNotFound);
}

TEST_F(TopicTest, NewSubscriptionStartsAtTheNextEventUnlessFromBeginning) {
  Emit(Event("old", "x"));
  Sub("late");
  SubscriptionOptions all;
  all.from_beginning = true;
  ASSERT_TRUE(h.broker().CreateSubscription("t", "all", all));
  Emit(Event("new", "x"));
  EXPECT_EQ(Data("late"), std::vector<std::string>{"new"});
  EXPECT_EQ(Data("all"), (std::vector<std::string>{"old", "new"}));
}

TEST_F(TopicTest, FiltersExactAndPrefix) {
  Sub("exact", {.type = "order.created"});
  Sub("prefix", {.type = "order.*"});
  Sub("source", {.source = "/billing"});
  Emit(Event("1", "order.created"));
  Emit(Event("2", "order.shipped"));
  Emit(Event("3", "order"));
  Emit(Event("4", "invoice.paid", "/billing"));
  EXPECT_EQ(Data("exact"), std::vector<std::string>{"1"});
  EXPECT_EQ(Data("prefix"), (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(Data("source"), std::vector<std::string>{"4"});
}

TEST_F(TopicTest, ReplayFromAnOffset) {
  Sub("s");
  std::vector<PublishResult> sent;
  for (int i = 0; i < 5; ++i) sent.push_back(Emit(Event(std::to_string(i), "x")));
  const Inbox s = Inbox::Subscription("t", "s");
  for (const auto& d : h.Receive(s)) h.Ack(s, {d.receipt});
  EXPECT_TRUE(Data("s").empty());
  ASSERT_TRUE(h.broker().ReplaySubscription("t", "s", sent[2].sequence));
  EXPECT_EQ(Data("s"), (std::vector<std::string>{"2", "3", "4"}));
}

TEST_F(TopicTest, ReplayFromATime) {
  Sub("s");
  Emit(Event("early", "x"));
  h.Advance(1h);
  const BusTime mark = h.now;
  Emit(Event("at", "x"));
  h.Advance(1min);
  Emit(Event("later", "x"));
  const Inbox s = Inbox::Subscription("t", "s");
  for (const auto& d : h.Receive(s)) h.Ack(s, {d.receipt});
  ASSERT_TRUE(h.broker().ReplaySubscriptionFrom("t", "s", mark));
  EXPECT_EQ(Data("s"), (std::vector<std::string>{"at", "later"}));
}

TEST_F(TopicTest, SubscriptionsPersistAcrossReopen) {
  Sub("s", {.type = "keep.*"});
  Emit(Event("1", "keep.me"));
  Emit(Event("2", "drop.me"));
  Emit(Event("3", "keep.too"));
  const Inbox s = Inbox::Subscription("t", "s");
  auto got = h.Receive(s, 1);
  h.Ack(s, {got.at(0).receipt});
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  EXPECT_EQ(h.broker().Subscriptions("t").value(), std::vector<std::string>{"s"});
  EXPECT_EQ(Data("s"), std::vector<std::string>{"3"});
}

TEST(RetentionTest, NeverDeletesUnackedMessages) {
  Harness h;
  // Retention deletes consumed segments ("keep until consumed"): only what is unacked protects.
  QueueOptions options = FastQueue();
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  const Inbox q = Inbox::Queue("q");
  for (int i = 0; i < 60; ++i)
    h.MustPublish("q", Msg(std::string(200, 'a' + i % 26), "", std::to_string(i)));
  // Ack the first 30 only; 30..59 stay unacked.
  auto first = h.Receive(q, 30);
  for (const auto& d : first) h.Ack(q, {d.receipt});
  const auto before = h.broker().GetLogStats("queues/q/messages").value().segments;
  ASSERT_TRUE(h.EnforceRetention());
  const auto after = h.broker().GetLogStats("queues/q/messages").value().segments;
  EXPECT_LT(after, before);  // acked segments went
  auto rest = h.Receive(q);
  ASSERT_EQ(rest.size(), 30u);
  EXPECT_EQ(rest.front().message.id, "30");
  EXPECT_EQ(rest.back().message.id, "59");
}

TEST(RetentionTest, TopicKeepsTheSlowestSubscriptionsBacklog) {
  Harness h;
  TopicOptions options;  // consumed segments go: only the slow subscription protects
  ASSERT_TRUE(h.broker().CreateTopic("t", options));
  ASSERT_TRUE(h.broker().CreateSubscription("t", "fast", {}));
  ASSERT_TRUE(h.broker().CreateSubscription("t", "slow", {}));
  for (int i = 0; i < 60; ++i) {
    ASSERT_TRUE(h.Publish(Destination::Topic("t"), Msg(std::string(200, 'x'))));
  }
  const Inbox fast = Inbox::Subscription("t", "fast");
  for (const auto& d : h.Receive(fast)) h.Ack(fast, {d.receipt});
  ASSERT_TRUE(h.EnforceRetention());
  EXPECT_EQ(h.Receive(Inbox::Subscription("t", "slow")).size(), 60u);
}

}  // namespace
}  // namespace ferry::bus

namespace ferry::bus {
namespace {

// A PUT is answered once what it wrote is fsynced (batch mode): a power cut right after the
// answer keeps the subscription and its options.
TEST(SubscriptionStoredTest, SubscriptionSurvivesAPowerCutOnceStored) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  testing::Harness h(fs);
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  SubscriptionOptions o;
  o.delivery.max_deliveries = 7;
  o.filter.type = "order.";
  ASSERT_TRUE(h.broker().CreateSubscription("t", "s", o));
  std::optional<Result<void>> stored;
  std::optional<LogDurabilityStats> state_then;
  h.broker().WhenSubscriptionStored("t", "s", [&](Result<void> r) {
    stored = r;
    state_then = h.broker().GetLogStats("topics/t/subscriptions/s").value();
  });
  ASSERT_TRUE(h.posts.Await([&] { return stored.has_value(); }));
  ASSERT_TRUE(*stored);
  EXPECT_GE(state_then->synced_records, state_then->appends);  // nothing written unsynced
  fs->ArmCrashAfter(1);  // the power goes now: closing writes and syncs nothing more
  h.Close();
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  h.Open();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  auto options = h.broker().GetSubscriptionOptions("t", "s");
  ASSERT_TRUE(options.has_value()) << options.error().message();
  EXPECT_EQ(options->delivery.max_deliveries, 7u);
  EXPECT_EQ(options->filter.type, "order.");

  std::optional<Result<void>> unknown;
  h.broker().WhenSubscriptionStored("t", "nope", [&](Result<void> r) { unknown = r; });
  ASSERT_TRUE(h.posts.Await([&] { return unknown.has_value(); }));
  ASSERT_FALSE(*unknown);
  EXPECT_EQ(unknown->error().code(), ErrorCode::kNotFound);
}

// Options changed on an existing subscription (a PUT) are what it runs with after a restart, a
// power cut once stored, and a checkpoint that deleted the record that changed them.
TEST(SubscriptionStoredTest, ChangedBackoffSurvivesAPowerCutAndACheckpoint) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  testing::Harness h(fs);
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  ASSERT_TRUE(h.broker().CreateSubscription("t", "s", {}));
  auto changed = h.broker().GetSubscriptionOptions("t", "s").value();
  changed.delivery.backoff = {.initial = 250ms, .max = 3s, .multiplier = 1.5};
  ASSERT_TRUE(h.broker().CreateSubscription("t", "s", changed));
  std::optional<Result<void>> stored;
  h.broker().WhenSubscriptionStored("t", "s", [&](Result<void> r) { stored = r; });
  ASSERT_TRUE(h.posts.Await([&] { return stored.has_value(); }));
  ASSERT_TRUE(*stored);
  fs->ArmCrashAfter(1);
  h.Close();
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  h.Open();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  auto after = h.broker().GetSubscriptionOptions("t", "s");
  ASSERT_TRUE(after.has_value()) << after.error().message();
  EXPECT_EQ(after->delivery.backoff.initial, 250ms);
  EXPECT_EQ(after->delivery.backoff.max, 3s);
  EXPECT_EQ(after->delivery.backoff.multiplier, 1.5);

  // Traffic until checkpoints replace the records that set the options.
  h.state_checkpoint_bytes = 4096;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  const Inbox s = Inbox::Subscription("t", "s");
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(h.Publish(Destination::Topic("t"), Msg(std::string(100, 'x'))));
    for (const auto& d : h.Receive(s)) h.Ack(s, {d.receipt});
  }
  EXPECT_GE(h.broker().GetSubscriptionStats("t", "s")->inbox.checkpoints, 1u);
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  after = h.broker().GetSubscriptionOptions("t", "s");
  ASSERT_TRUE(after.has_value()) << after.error().message();
  EXPECT_EQ(after->delivery.backoff.initial, 250ms);
  EXPECT_EQ(after->delivery.backoff.max, 3s);
  // And it is the backoff in force: a nack waits 250ms, not the default 1s.
  ASSERT_TRUE(h.Publish(Destination::Topic("t"), Msg("n")));
  auto first = h.Receive(s);
  ASSERT_EQ(first.size(), 1u);
  h.Nack(s, {first[0].receipt});
  h.Advance(200ms);
  EXPECT_TRUE(h.Receive(s).empty());
  h.Advance(100ms);
  EXPECT_EQ(h.Receive(s).size(), 1u);
}

// A push is stored with the options: it survives a power cut once stored, and turning it off is
// stored too. Options without a push keep the first version of the encoding.
TEST(SubscriptionStoredTest, PushIsStoredWithTheOptions) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  testing::Harness h(fs);
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  SubscriptionOptions o;
  o.push = PushOptions{"hooks", "/in", 1500ms, 3};
  ASSERT_TRUE(h.broker().CreateSubscription("t", "s", o));
  const auto wait_stored = [&] {
    std::optional<Result<void>> stored;
    h.broker().WhenSubscriptionStored("t", "s", [&](Result<void> r) { stored = r; });
    ASSERT_TRUE(h.posts.Await([&] { return stored.has_value(); }));
    ASSERT_TRUE(*stored);
  };
  const auto power_cut = [&] {
    fs->ArmCrashAfter(1);
    h.Close();
    fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
    h.Open();
    ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  };
  wait_stored();
  power_cut();
  auto after = h.broker().GetSubscriptionOptions("t", "s");
  ASSERT_TRUE(after.has_value()) << after.error().message();
  ASSERT_TRUE(after->push.has_value());
  EXPECT_EQ(after->push->service, "hooks");
  EXPECT_EQ(after->push->path, "/in");
  EXPECT_EQ(after->push->timeout, 1500ms);
  EXPECT_EQ(after->push->concurrency, 3u);

  after->push.reset();
  ASSERT_TRUE(h.broker().CreateSubscription("t", "s", *after));
  wait_stored();
  power_cut();
  after = h.broker().GetSubscriptionOptions("t", "s");
  ASSERT_TRUE(after.has_value()) << after.error().message();
  EXPECT_FALSE(after->push.has_value());
}

TEST(SubscriptionOptionsCodecTest, VersionOneWithoutPushVersionTwoWithIt) {
  SubscriptionOptions o;
  o.filter.type = "a.*";
  const std::string v1 = EncodeSubscriptionOptions(o);
  EXPECT_EQ(v1.front(), 1);  // readable by builds from before push was stored
  o.push = PushOptions{"hooks", "/", 10s, 1};
  const std::string v2 = EncodeSubscriptionOptions(o);
  EXPECT_EQ(v2.front(), 2);
  auto back = DecodeSubscriptionOptions(v2);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(EncodeSubscriptionOptions(*back), v2);
  // A version-2 record cut inside the push is refused, not read as no push.
  EXPECT_FALSE(DecodeSubscriptionOptions(v2.substr(0, v2.size() - 1)).has_value());
  EXPECT_FALSE(DecodeSubscriptionOptions(std::string(1, '\x03') + v1.substr(1)).has_value());
}

}  // namespace
}  // namespace ferry::bus

namespace ferry::bus {
namespace {

// ReadTopic and the topic listener: what topic routes stream from (no subscription needed).
TEST_F(TopicTest, ReadTopicGivesAcknowledgedEventsAfterASequenceWithinBudgets) {
  int notified = 0;
  ASSERT_TRUE(h.broker().SetTopicListener("t", [&] { ++notified; }));
  std::vector<std::uint64_t> seqs;
  for (int i = 0; i < 5; ++i) seqs.push_back(Emit(Event("e" + std::to_string(i), "x")).sequence);
  EXPECT_GE(notified, 1);
  auto all = h.broker().ReadTopic("t", 0, 100, 1 << 20);
  ASSERT_TRUE(all) << all.error().message();
  ASSERT_EQ(all->events.size(), 5u);
  EXPECT_EQ(all->events[0].sequence, seqs[0]);
  EXPECT_EQ(all->events[4].message.data, "e4");
  EXPECT_EQ(all->last, seqs[4]);
  EXPECT_EQ(all->first, seqs[0]);
  auto after = h.broker().ReadTopic("t", seqs[2], 100, 1 << 20);
  ASSERT_TRUE(after);
  ASSERT_EQ(after->events.size(), 2u);
  EXPECT_EQ(after->events[0].sequence, seqs[3]);
  // At most max_events, and past the first event at most about max_bytes.
  EXPECT_EQ(h.broker().ReadTopic("t", 0, 2, 1 << 20)->events.size(), 2u);
  EXPECT_EQ(h.broker().ReadTopic("t", 0, 100, 1)->events.size(), 1u);
  // Nothing after the newest; an unknown topic is kNotFound.
  EXPECT_TRUE(h.broker().ReadTopic("t", seqs[4], 100, 1 << 20)->events.empty());
  auto unknown = h.broker().ReadTopic("nope", 0, 1, 1);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(h.broker().SetTopicListener("nope", [] {}));
}

}  // namespace
}  // namespace ferry::bus
