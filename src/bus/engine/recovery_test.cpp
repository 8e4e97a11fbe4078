// Restarts and crashes: acks, attempts and positions survive a reopen; after a simulated power
// cut that drops every unsynced byte, no acknowledged publish is lost, none is stored twice,
// and no durably acked message comes back.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");

TEST(RecoveryTest, AcksAndAttemptsSurviveReopen) {
  Harness h;
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  for (int i = 0; i < 5; ++i)
    h.MustPublish("q", Msg("m" + std::to_string(i), "", std::to_string(i)));
  auto got = h.Receive(kQ, 3);
  ASSERT_EQ(got.size(), 3u);
  h.Ack(kQ, {got[0].receipt, got[2].receipt});  // "1" stays leased
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  // The lease of "1" died with the process: it counts as a failed attempt with backoff.
  auto after = h.Receive(kQ);
  std::set<std::string> ids;
  for (const auto& d : after) ids.insert(d.message.id);
  EXPECT_EQ(ids, (std::set<std::string>{"3", "4"}));
  h.Advance(1s);
  after = h.Receive(kQ);
  ASSERT_EQ(after.size(), 1u);
  EXPECT_EQ(after[0].message.id, "1");
  EXPECT_EQ(after[0].attempt, 2u);
  // Receipts from before the restart are stale.
  EXPECT_EQ(h.Ack(kQ, {got[1].receipt}), std::vector{SettleOutcome::kStale});
}

TEST(RecoveryTest, NackBackoffSurvivesReopen) {
  Harness h;
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("x"));
  h.Nack(kQ, {h.Receive(kQ).at(0).receipt}, 1min);
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(1min);
  EXPECT_EQ(h.Receive(kQ).at(0).attempt, 2u);
}

// One round: publish and ack (some awaited, some not), cut the power at a random point,
// restart, retry every publish with the same id, and check the invariants.
// Returns whether the power cut happened before the round's traffic ended.
bool CrashRound(std::uint64_t seed) {
  SCOPED_TRACE(seed);
  auto fs = std::make_shared<FaultInjectionFileSystem>(seed);
  Harness h(fs);
  EXPECT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  std::set<std::string> publish_acked;
  std::set<std::string> consume_acked;  // acks whose callback said durable
  std::set<std::string> ack_sent;       // acks issued: durable or not, nobody knows
  std::set<std::string> attempted;
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 30; ++i) {
    const std::string id = "m" + std::to_string(i);
    attempted.insert(id);
    h.broker().Publish(Destination::Queue("q"), Msg(id, "", id),
                       [&publish_acked, id](Result<PublishResult> r) {
                         if (r) publish_acked.insert(id);
                       });
    if (i == 15) fs->ArmCrashAfter(1 + rng() % 40);
    if (rng() % 3 == 0) h.posts.Await([] { return false; }, 2ms);
    auto got = h.TryReceive(kQ, 2);
    if (!got) continue;
    for (const auto& d : *got) {
      ack_sent.insert(d.message.id);
      h.broker().Ack(kQ, {d.receipt}, [&consume_acked, id = d.message.id](auto r) {
        if (r && r->at(0) == SettleOutcome::kOk) consume_acked.insert(id);
      });
    }
  }
  h.posts.Await([] { return false; }, 20ms);
  const bool crashed = fs->down();
  h.Close();
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  h.Open();
  EXPECT_TRUE(h.broker().CreateQueue("q", FastQueue()));

  std::map<std::string, int> seen;
  auto drain = [&] {
    for (int round = 0; round < 50; ++round) {
      auto got = h.Receive(kQ);
      for (const auto& d : got) {
        ++seen[d.message.id];
        h.Ack(kQ, {d.receipt});
      }
      h.Advance(10s);
    }
  };
  drain();
  for (const std::string& id : publish_acked) {
    EXPECT_TRUE(seen.contains(id) || ack_sent.contains(id))
        << id << " lost; dead letters " << h.broker().DeadLetters(kQ, 100, 0)->size()
        << " messages in log " << h.broker().GetLogStats("queues/q/messages").value().appends;
  }
  for (const std::string& id : consume_acked) EXPECT_FALSE(seen.contains(id)) << id;
  // The producer retries everything with the same ids: nothing is stored twice.
  for (const std::string& id : attempted) {
    auto r = h.Publish(Destination::Queue("q"), Msg(id, "", id));
    EXPECT_TRUE(r) << r.error().message();
  }
  drain();
  for (const std::string& id : attempted) {
    EXPECT_LE(seen[id], 1) << id << " stored twice";
    EXPECT_TRUE(seen[id] == 1 || ack_sent.contains(id)) << id;
  }
  return crashed;
}

TEST(RecoveryTest, PowerCutLosesNothingAcknowledged) {
  int crashed = 0;
  for (std::uint64_t seed = 1; seed <= 12; ++seed) crashed += CrashRound(seed) ? 1 : 0;
  EXPECT_GE(crashed, 6);  // most rounds cut the power mid-traffic
}

}  // namespace
}  // namespace ferry::bus
