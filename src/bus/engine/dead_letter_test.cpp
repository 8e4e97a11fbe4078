// Dead letters: max_deliveries, the reason, listing, replay (all, by id, past de-dup), restart.
#include <gtest/gtest.h>

#include <map>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");

class DeadLetterTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue())); }
  // Delivers and nacks (with no delay) until the message is dead (max_deliveries = 3).
  void NackToDeath() {
    for (int i = 0; i < 3; ++i) {
      auto d = h.Receive(kQ, 1);
      ASSERT_EQ(d.size(), 1u);
      h.Nack(kQ, {d[0].receipt}, 0s);
    }
  }
  Harness h;
};

TEST_F(DeadLetterTest, NackedMaxDeliveriesTimesGoesToDeadLetters) {
  h.MustPublish("q", Msg("poison", "", "p1"));
  NackToDeath();
  EXPECT_TRUE(h.Receive(kQ).empty());
  auto dead = h.broker().DeadLetters(kQ, 10, 0);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 1u);
  EXPECT_EQ((*dead)[0].message.id, "p1");
  EXPECT_EQ((*dead)[0].message.data, "poison");
  EXPECT_EQ((*dead)[0].attempts, 3u);
  EXPECT_EQ((*dead)[0].reason, "max deliveries (3) exceeded: nacked 3 times");
  EXPECT_EQ((*dead)[0].dead_lettered_at, h.now);
  auto stats = h.broker().GetQueueStats("q")->inbox;
  EXPECT_EQ(stats.dead_letters, 1u);
  EXPECT_EQ(stats.dead_lettered, 1u);
}

TEST_F(DeadLetterTest, LeaseExpiriesGoToDeadLettersWithTheirReason) {
  h.MustPublish("q", Msg("slow"));
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(h.Receive(kQ).size(), 1u) << i;
    h.Advance(10s);  // lease
    h.Advance(8s);   // longest backoff
  }
  EXPECT_TRUE(h.Receive(kQ).empty());
  auto dead = h.broker().DeadLetters(kQ, 10, 0).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].reason, "max deliveries (3) exceeded after lease expiry");
}

TEST_F(DeadLetterTest, ReplayAllRedeliversFromAttemptOne) {
  h.MustPublish("q", Msg("a", "", "a"));
  NackToDeath();
  EXPECT_EQ(h.Replay(kQ), 1u);
  EXPECT_TRUE(h.broker().DeadLetters(kQ, 10, 0)->empty());
  auto d = h.Receive(kQ);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].message.id, "a");
  EXPECT_EQ(d[0].attempt, 1u);
  EXPECT_EQ(h.Ack(kQ, {d[0].receipt}), std::vector{SettleOutcome::kOk});
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.replayed, 1u);
}

TEST_F(DeadLetterTest, ReplayByIdLeavesTheOthers) {
  h.MustPublish("q", Msg("a", "", "a"));
  NackToDeath();
  h.MustPublish("q", Msg("b", "", "b"));
  NackToDeath();
  EXPECT_EQ(h.Replay(kQ, {"b", "unknown"}), 1u);
  auto dead = h.broker().DeadLetters(kQ, 10, 0).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.id, "a");
  EXPECT_EQ(h.Receive(kQ).at(0).message.id, "b");
}

TEST_F(DeadLetterTest, ReplayIsNotBlockedByDedupe) {
  h.MustPublish("q", Msg("a", "", "same-id"));
  NackToDeath();
  // Within the de-dup window the id is a duplicate for publishers...
  EXPECT_TRUE(h.MustPublish("q", Msg("a", "", "same-id")).duplicate);
  // ...but a replay delivers it again all the same.
  EXPECT_EQ(h.Replay(kQ, {"same-id"}), 1u);
  EXPECT_EQ(h.Receive(kQ).size(), 1u);
}

TEST_F(DeadLetterTest, DeadLettersAndReplaysSurviveReopen) {
  h.MustPublish("q", Msg("a", "", "a"));
  NackToDeath();
  h.MustPublish("q", Msg("b", "", "b"));
  NackToDeath();
  h.MustPublish("q", Msg("c", "", "c"));
  auto c = h.Receive(kQ);
  h.Ack(kQ, {c.at(0).receipt});
  EXPECT_EQ(h.Replay(kQ, {"a"}), 1u);
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  auto dead = h.broker().DeadLetters(kQ, 10, 0).value();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(dead[0].message.id, "b");
  EXPECT_EQ(dead[0].reason, "max deliveries (3) exceeded: nacked 3 times");
  auto d = h.Receive(kQ);  // the replayed "a" only: "c" was acked
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].message.id, "a");
  EXPECT_EQ(d[0].attempt, 1u);
}

// A dead letter replayed while the floor is still below it (an earlier message is leased)
// is read like any message after a restart: its deliveries since the replay still count.
TEST_F(DeadLetterTest, ReplayedAboveTheFloorKeepsItsAttemptsAcrossRestart) {
  h.MustPublish("q", Msg("a", "", "a"));
  h.MustPublish("q", Msg("b", "", "b"));
  auto first = h.Receive(kQ);
  ASSERT_EQ(first.size(), 2u);  // "a" stays leased: the floor stays at its sequence
  h.Nack(kQ, {first[1].receipt}, 0s);
  for (int i = 0; i < 2; ++i) h.Nack(kQ, {h.Receive(kQ).at(0).receipt}, 0s);
  ASSERT_EQ(h.broker().DeadLetters(kQ, 10, 0)->size(), 1u);
  ASSERT_EQ(h.Replay(kQ, {"b"}), 1u);
  auto replayed = h.Receive(kQ);
  ASSERT_EQ(replayed.size(), 1u);
  EXPECT_EQ(replayed[0].attempt, 1u);
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.Advance(1s);  // both leases died with the process: a failed attempt each, 1 s of backoff
  h.Advance(1s);
  std::map<std::string, std::uint32_t> attempts;
  for (const Delivery& d : h.Receive(kQ)) attempts[d.message.id] = d.attempt;
  EXPECT_EQ(attempts, (std::map<std::string, std::uint32_t>{{"a", 2}, {"b", 2}}));
}

TEST_F(DeadLetterTest, ListingPages) {
  for (const char* id : {"a", "b", "c"}) {
    h.MustPublish("q", Msg(id, "", id));
    NackToDeath();
  }
  auto first = h.broker().DeadLetters(kQ, 2, 0).value();
  ASSERT_EQ(first.size(), 2u);
  auto rest = h.broker().DeadLetters(kQ, 2, first.back().sequence).value();
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].message.id, "c");
}

}  // namespace
}  // namespace ferry::bus
