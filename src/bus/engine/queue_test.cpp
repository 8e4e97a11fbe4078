// Queues: publish, receive, ack, leases, nacks, backoff, receipts, delayed delivery.
#include <gtest/gtest.h>

#include <set>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");

class QueueTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue())); }
  Harness h;
};

TEST_F(QueueTest, PublishReceiveAck) {
  const PublishResult p = h.MustPublish("q", Msg("hello"));
  EXPECT_FALSE(p.id.empty());
  EXPECT_EQ(p.sequence, 1u);
  EXPECT_FALSE(p.duplicate);
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "hello");
  EXPECT_EQ(got[0].message.id, p.id);
  EXPECT_EQ(got[0].attempt, 1u);
  EXPECT_EQ(got[0].lease_expires, h.now + 10s);
  EXPECT_EQ(h.Ack(kQ, {got[0].receipt}), std::vector{SettleOutcome::kOk});
  h.Advance(1h);
  EXPECT_TRUE(h.Receive(kQ).empty());
  auto stats = h.broker().GetQueueStats("q");
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->inbox.published, 1u);
  EXPECT_EQ(stats->inbox.acked, 1u);
  EXPECT_EQ(stats->inbox.ready + stats->inbox.in_flight + stats->inbox.delayed, 0u);
  EXPECT_GE(h.broker().GetLogStats("queues/q/messages")->sync_rounds, 1u);
  EXPECT_EQ(h.broker().GetLogStats("queues/nope/state").error().code(), ErrorCode::kNotFound);
  // The stats show the logs' counters as the backend names them.
  ASSERT_EQ(stats->storage.size(), 2u);
  EXPECT_EQ(stats->storage[0].name, "messages_log");
  EXPECT_EQ(stats->storage[1].name, "state_log");
  EXPECT_EQ(stats->storage[0].counters.at(0),
            std::make_pair(std::string("appends"), std::uint64_t{1}));
}

TEST_F(QueueTest, UnknownQueueIsNotFound) {
  auto r = h.Publish(Destination::Queue("nope"), Msg("x"));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(h.TryReceive(Inbox::Queue("nope"), 1).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(h.broker().CreateQueue("../x", FastQueue()).error().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(QueueTest, CompetingConsumersGetDistinctMessages) {
  for (int i = 0; i < 10; ++i) h.MustPublish("q", Msg("m" + std::to_string(i)));
  auto a = h.Receive(kQ, 4);
  auto b = h.Receive(kQ, 4);
  auto c = h.Receive(kQ, 4);
  EXPECT_EQ(a.size(), 4u);
  EXPECT_EQ(b.size(), 4u);
  EXPECT_EQ(c.size(), 2u);
  std::set<std::string> seen;
  for (const auto* batch : {&a, &b, &c}) {
    for (const auto& d : *batch) EXPECT_TRUE(seen.insert(d.message.data).second) << d.message.data;
  }
  EXPECT_EQ(seen.size(), 10u);
}

TEST_F(QueueTest, LeaseExpiryRedeliversWithBackoff) {
  h.MustPublish("q", Msg("x"));
  auto first = h.Receive(kQ);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(h.broker().NextWakeup(), h.now + 10s);
  h.Advance(10s);  // lease ends; the first backoff is 1 s
  EXPECT_TRUE(h.Receive(kQ).empty());
  EXPECT_EQ(h.broker().NextWakeup(), h.now + 1s);
  h.Advance(1s);
  auto second = h.Receive(kQ);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].attempt, 2u);
  EXPECT_NE(second[0].receipt, first[0].receipt);
  h.Advance(10s);  // second failure: 2 s
  h.Advance(1s);
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(1s);
  EXPECT_EQ(h.Receive(kQ).at(0).attempt, 3u);
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.lease_expired, 2u);
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.redelivered, 2u);
}

TEST_F(QueueTest, NackWithoutDelayWaitsTheBackoff) {
  h.MustPublish("q", Msg("x"));
  auto d = h.Receive(kQ);
  EXPECT_EQ(h.Nack(kQ, {d.at(0).receipt}), std::vector{SettleOutcome::kOk});
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(999ms);
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(1ms);
  EXPECT_EQ(h.Receive(kQ).at(0).attempt, 2u);
}

TEST_F(QueueTest, NackWithDelayWaitsThatDelay) {
  h.MustPublish("q", Msg("x"));
  auto d = h.Receive(kQ);
  EXPECT_EQ(h.Nack(kQ, {d.at(0).receipt}, 5s), std::vector{SettleOutcome::kOk});
  h.Advance(4s);
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(1s);
  EXPECT_EQ(h.Receive(kQ).size(), 1u);
}

TEST_F(QueueTest, NackWithZeroDelayRedeliversAtOnce) {
  h.MustPublish("q", Msg("x"));
  auto d = h.Receive(kQ);
  h.Nack(kQ, {d.at(0).receipt}, 0s);
  EXPECT_EQ(h.Receive(kQ).size(), 1u);
}

TEST_F(QueueTest, StaleReceiptChangesNothing) {
  h.MustPublish("q", Msg("x"));
  auto first = h.Receive(kQ);
  h.Advance(10s);
  h.Advance(1s);
  auto second = h.Receive(kQ);
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(h.Ack(kQ, {first[0].receipt}), std::vector{SettleOutcome::kStale});
  EXPECT_EQ(h.Nack(kQ, {first[0].receipt}), std::vector{SettleOutcome::kStale});
  EXPECT_EQ(h.broker().Extend(kQ, {first[0].receipt}, 1min).value(),
            std::vector{SettleOutcome::kStale});
  auto stats = h.broker().GetQueueStats("q")->inbox;
  EXPECT_EQ(stats.in_flight, 1u);
  EXPECT_EQ(stats.acked, 0u);
  EXPECT_EQ(stats.nacked, 0u);
  EXPECT_EQ(h.Ack(kQ, {second[0].receipt}), std::vector{SettleOutcome::kOk});
  // Acking again: the message is settled, so the receipt is stale.
  EXPECT_EQ(h.Ack(kQ, {second[0].receipt}), std::vector{SettleOutcome::kStale});
}

TEST_F(QueueTest, MalformedOrUnknownReceiptIsInvalid) {
  h.MustPublish("q", Msg("x"));
  auto d = h.Receive(kQ);
  const auto outcomes = h.Ack(kQ, {"garbage", "", "99.1.0000000000000001", d.at(0).receipt});
  EXPECT_EQ(outcomes, (std::vector{SettleOutcome::kInvalid, SettleOutcome::kInvalid,
                                   SettleOutcome::kInvalid, SettleOutcome::kOk}));
}

TEST_F(QueueTest, AckAfterLeaseExpiryBeforeRedeliveryCounts) {
  h.MustPublish("q", Msg("x"));
  auto d = h.Receive(kQ);
  h.Advance(10s);
  EXPECT_EQ(h.Ack(kQ, {d.at(0).receipt}), std::vector{SettleOutcome::kOk});
  h.Advance(1min);
  EXPECT_TRUE(h.Receive(kQ).empty());
}

TEST_F(QueueTest, ExtendKeepsTheLease) {
  h.MustPublish("q", Msg("x"));
  auto d = h.Receive(kQ);
  h.Advance(9s);
  EXPECT_EQ(h.broker().Extend(kQ, {d.at(0).receipt}, 30s).value(), std::vector{SettleOutcome::kOk});
  h.Advance(29s);
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.in_flight, 1u);
  EXPECT_EQ(h.Ack(kQ, {d.at(0).receipt}), std::vector{SettleOutcome::kOk});
}

TEST_F(QueueTest, DelayedDelivery) {
  Message m = Msg("later");
  m.deliver_at = h.now + 30s;
  h.MustPublish("q", m);
  h.MustPublish("q", Msg("now"));
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "now");
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.delayed, 1u);
  EXPECT_EQ(h.broker().NextWakeup(), h.now + 10s);  // the lease of "now" comes first
  h.Ack(kQ, {got[0].receipt});
  EXPECT_EQ(h.broker().NextWakeup(), h.now + 30s);
  h.Advance(29s);
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(1s);
  got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "later");
  EXPECT_EQ(got[0].message.deliver_at, m.deliver_at);
}

TEST_F(QueueTest, ReadyListenerFiresWhenAMessageArrives) {
  int calls = 0;
  ASSERT_TRUE(h.broker().SetReadyListener(kQ, [&] { ++calls; }));
  h.posts.RunReady();
  EXPECT_EQ(calls, 0);
  h.MustPublish("q", Msg("x"));
  h.posts.Await([&] { return calls > 0; });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(h.Receive(kQ).size(), 1u);
}

TEST_F(QueueTest, AttributesRoundTrip) {
  Message m = Msg("{}", "k1", "id-1");
  m.type = "order.created";
  m.source = "/orders";
  m.subject = "42";
  m.content_type = "application/json";
  m.attributes = {{"traceparent", "00-abc"}, {"tenant", "t1"}};
  h.MustPublish("q", m);
  auto got = h.Receive(kQ).at(0).message;
  EXPECT_EQ(got.id, "id-1");
  EXPECT_EQ(got.key, "k1");
  EXPECT_EQ(got.type, m.type);
  EXPECT_EQ(got.source, m.source);
  EXPECT_EQ(got.subject, m.subject);
  EXPECT_EQ(got.content_type, m.content_type);
  EXPECT_EQ(got.attributes, m.attributes);
  EXPECT_EQ(got.published_at, h.now);
}

TEST_F(QueueTest, OversizedMessageIsRejectedAndNotNoSpace) {
  QueueOptions small = FastQueue();
  small.storage.max_message_bytes = 100;
  ASSERT_TRUE(h.broker().CreateQueue("small", small));
  auto r = h.Publish(Destination::Queue("small"), Msg(std::string(200, 'x')));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_TRUE(h.Receive(Inbox::Queue("small")).empty());
}

TEST_F(QueueTest, QueueOverItsByteLimitIsFull) {
  QueueOptions tiny = FastQueue();
  tiny.storage.max_bytes = 1000;
  ASSERT_TRUE(h.broker().CreateQueue("tiny", tiny));
  Result<PublishResult> r;
  int stored = 0;
  while ((r = h.Publish(Destination::Queue("tiny"), Msg(std::string(100, 'x'))))) ++stored;
  EXPECT_GT(stored, 0);
  EXPECT_EQ(r.error().code(), ErrorCode::kFull) << r.error().message();
  EXPECT_EQ(h.Receive(Inbox::Queue("tiny")).size(), static_cast<std::size_t>(stored));
}

TEST(QueueDurabilityTest, IntervalModeAcknowledgesBeforeTheFsync) {
  Harness h(nullptr, Durability::kInterval);
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("x"));
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(h.Ack(kQ, {got[0].receipt}), std::vector{SettleOutcome::kOk});
}

TEST(QueueDurabilityTest, FullDiskIsNoSpaceAndKeepsWhatIsStored) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  fs->SetZeroAhead(false);  // so that the full disk meets the next write
  Harness h(fs);
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("kept"));
  fs->SetSpaceLimit(0);
  auto r = h.Publish(Destination::Queue("q"), Msg(std::string(100, 'x')));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace) << r.error().message();
  fs->SetSpaceLimit(std::nullopt);
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "kept");
}

// Writes are coalesced per loop turn, but a delivery's record is written before the consumer
// has the message, so a kill -9 right after a receive still counts the attempt.
TEST(QueueDurabilityTest, ADeliveryIsWrittenBeforeTheConsumerHasIt) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  fs->SetZeroAhead(false);  // so that a file's size counts what was written to it
  Harness h(fs);
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("x"));
  h.posts.RunReady();
  const std::string dir = h.data_dir() + "/queues/q/state";
  auto bytes = [&] {
    std::uint64_t total = 0;
    for (const std::string& name : fs->List(dir).value_or(std::vector<std::string>{})) {
      total += fs->FileSize(dir + "/" + name).value_or(0);
    }
    return total;
  };
  const std::uint64_t before = bytes();
  std::optional<Result<std::vector<Delivery>>> got;
  h.broker().Receive(kQ, 10, [&](Result<std::vector<Delivery>> r) { got = std::move(r); });
  EXPECT_GT(bytes(), before);  // no posted pump ran in between
  h.posts.RunReady();
  ASSERT_TRUE(got.has_value() && got->has_value());
  ASSERT_EQ((*got)->size(), 1u);
}

// Publishes of one loop turn share a write: when the disk is full at that write, each fails,
// and the de-dup index forgets their ids, so a retry is stored rather than answered as a
// duplicate of a message that never was.
TEST(QueueDurabilityTest, FullDiskAtTheSharedWriteFailsEachPublishAndForgetsItsId) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  fs->SetZeroAhead(false);  // so that the full disk meets the next write
  Harness h(fs);
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("kept", "", "k"));
  fs->SetSpaceLimit(0);
  std::vector<Result<PublishResult>> answers;
  for (const char* id : {"a", "b", "a"}) {
    h.broker().Publish(Destination::Queue("q"), Msg(std::string("data-") + id, "", id),
                       [&](Result<PublishResult> r) { answers.push_back(std::move(r)); });
  }
  ASSERT_TRUE(h.posts.Await([&] { return answers.size() == 3; }));
  for (const auto& r : answers) {
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace) << r.error().message();
  }
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.published, 1u);
  fs->SetSpaceLimit(std::nullopt);
  auto again = h.Publish(Destination::Queue("q"), Msg("data-a", "", "a"));
  ASSERT_TRUE(again.has_value()) << again.error().message();
  EXPECT_FALSE(again->duplicate);
  EXPECT_EQ(again->sequence, 2u);  // the sequence the failed write held, given out again
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message.data, "kept");
  EXPECT_EQ(got[1].message.data, "data-a");
}

// A nack whose state record cannot be written (here the one that dead-letters the message)
// must fail: reported done, the dead-lettering would be lost on restart.
TEST(QueueDurabilityTest, NackThatCannotBeRecordedFails) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  fs->SetZeroAhead(false);  // so that the full disk meets the next write
  Harness h(fs);
  QueueOptions options = FastQueue();
  options.delivery.max_deliveries = 1;
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  h.MustPublish("q", Msg("x"));
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  // Wait until the delivery's record is durable, so that only the nack's record meets the full
  // disk. (Counting rounds would not do: one round may carry the delivery with earlier records.)
  ASSERT_TRUE(h.posts.Await([&] {
    const auto state = h.broker().GetLogStats("queues/q/state").value();
    return state.appends > 0 && state.synced_records == state.appends;
  }));
  fs->SetSpaceLimit(0);
  std::optional<Result<std::vector<SettleOutcome>>> out;
  h.broker().Nack(kQ, {got[0].receipt}, std::nullopt, [&](auto r) { out = std::move(r); });
  ASSERT_TRUE(h.posts.Await([&] { return out.has_value(); }));
  ASSERT_FALSE(out->has_value());
  EXPECT_EQ(out->error().code(), ErrorCode::kNoSpace);
}

}  // namespace
}  // namespace ferry::bus
