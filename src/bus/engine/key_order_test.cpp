// Per-key order: one message per key out at a time, in order; other keys go on; a poison
// message blocks only its key until it is dead-lettered.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");

class KeyOrderTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue())); }
  Harness h;
};

TEST_F(KeyOrderTest, SameKeyOneAtATimeOtherKeysInParallel) {
  h.MustPublish("q", Msg("a1", "A"));
  h.MustPublish("q", Msg("a2", "A"));
  h.MustPublish("q", Msg("b1", "B"));
  h.MustPublish("q", Msg("free"));
  auto got = h.Receive(kQ);
  std::vector<std::string> data;
  for (const auto& d : got) data.push_back(d.message.data);
  EXPECT_EQ(data, (std::vector<std::string>{"a1", "b1", "free"}));
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.blocked, 1u);
  h.Ack(kQ, {got[0].receipt});
  got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "a2");
}

// The window's counts follow every move: delivery, delay, key order, nack, lease expiry, ack,
// dead-lettering and replay, and a restart.
TEST_F(KeyOrderTest, StatsCountEachPlaceOfTheWindow) {
  const auto counts = [&] {
    const auto stats = h.broker().GetQueueStats("q");
    if (!stats) return std::vector<std::uint64_t>{};
    const InboxStats& s = stats->inbox;
    return std::vector<std::uint64_t>{s.ready, s.in_flight, s.delayed, s.blocked};
  };
  using Counts = std::vector<std::uint64_t>;  // ready, in flight, delayed, blocked
  h.MustPublish("q", Msg("a1", "A"));
  h.MustPublish("q", Msg("a2", "A"));
  h.MustPublish("q", Msg("free"));
  Message later = Msg("later");
  later.deliver_at = h.now + 5s;
  h.MustPublish("q", later);
  EXPECT_EQ(counts(), (Counts{2, 0, 1, 1}));
  auto got = h.Receive(kQ, 1);  // a1
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(counts(), (Counts{1, 1, 1, 1}));
  h.Nack(kQ, {got[0].receipt}, 2s);  // a1 waits 2s; a2 stays behind it
  EXPECT_EQ(counts(), (Counts{1, 0, 2, 1}));
  h.Advance(2s);
  EXPECT_EQ(counts(), (Counts{2, 0, 1, 1}));
  got = h.Receive(kQ);  // a1 (attempt 2), free
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(counts(), (Counts{0, 2, 1, 1}));
  h.Advance(10s);  // both leases (10s) end: each waits its backoff; "later" is due
  EXPECT_EQ(counts(), (Counts{1, 0, 2, 1}));
  h.Advance(10s);
  EXPECT_EQ(counts(), (Counts{3, 0, 0, 1}));
  got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 3u);
  for (const auto& d : got) {
    if (d.message.data == "a1") {
      h.Nack(kQ, {d.receipt}, 0s);  // its third failure: dead-lettered, a2 is free
    } else {
      h.Ack(kQ, {d.receipt});
    }
  }
  EXPECT_EQ(counts(), (Counts{1, 0, 0, 0}));
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.dead_letters, 1u);
  EXPECT_EQ(h.Replay(kQ), 1u);  // a1 goes ahead of a2 again
  EXPECT_EQ(counts(), (Counts{1, 0, 0, 1}));
  got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "a1");
  EXPECT_EQ(counts(), (Counts{0, 1, 0, 1}));
  h.Reopen();  // the lease held at the stop ends at the first tick
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  EXPECT_EQ(counts(), (Counts{0, 1, 0, 1}));
  h.Advance(1ms);  // a failed delivery: it waits its backoff
  EXPECT_EQ(counts(), (Counts{0, 0, 1, 1}));
  h.Advance(10s);
  EXPECT_EQ(counts(), (Counts{1, 0, 0, 1}));
}

TEST_F(KeyOrderTest, PoisonBlocksOnlyItsKeyUntilDeadLettered) {
  h.MustPublish("q", Msg("poison", "A"));
  h.MustPublish("q", Msg("a2", "A"));
  h.MustPublish("q", Msg("b1", "B"));
  h.MustPublish("q", Msg("b2", "B"));
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto got = h.Receive(kQ);
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got[0].message.data, "poison");
    EXPECT_EQ(got[0].attempt, static_cast<std::uint32_t>(attempt));
    for (const auto& d : got) {
      if (d.message.key == "B") h.Ack(kQ, {d.receipt});
      EXPECT_NE(d.message.data, "a2");
    }
    h.Nack(kQ, {got[0].receipt}, 0s);
  }
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "a2");
  EXPECT_EQ(h.broker().DeadLetters(kQ, 10, 0)->size(), 1u);
}

// Two consumers pull in turns, nack at random (with and without delay) and let leases expire;
// every key's messages must be acked in publish order and never two of a key out at once.
TEST_F(KeyOrderTest, TwoConsumersWithNacksKeepEveryKeysOrder) {
  QueueOptions options = FastQueue();
  options.delivery.max_deliveries = 0;  // never dead-letter: order must hold to the end
  ASSERT_TRUE(h.broker().CreateQueue("order", options));
  const Inbox q = Inbox::Queue("order");
  constexpr int kKeys = 4;
  constexpr int kPerKey = 15;
  for (int i = 0; i < kPerKey; ++i) {
    for (int k = 0; k < kKeys; ++k) {
      h.Publish(Destination::Queue("order"), Msg(std::to_string(i), "key" + std::to_string(k)));
    }
  }
  std::mt19937 rng(7);
  std::map<std::string, int> next;  // key -> next expected index
  std::map<std::string, int> out;   // key -> deliveries in flight
  std::vector<std::vector<Delivery>> held(2);
  int acked = 0;
  for (int round = 0; round < 2000 && acked < kKeys * kPerKey; ++round) {
    auto& mine = held[round % 2];
    for (auto& d : h.Receive(q, 3)) {
      EXPECT_EQ(out[d.message.key]++, 0) << "two of " << d.message.key << " out at once";
      EXPECT_EQ(std::stoi(d.message.data), next[d.message.key]) << d.message.key;
      mine.push_back(std::move(d));
    }
    std::vector<Delivery> keep;
    for (auto& d : mine) {
      const int dice = static_cast<int>(rng() % 10);
      if (dice < 5) {
        if (h.Ack(q, {d.receipt}) == std::vector{SettleOutcome::kOk}) {
          ++next[d.message.key];
          ++acked;
        }
        --out[d.message.key];
      } else if (dice < 7) {
        h.Nack(q, {d.receipt}, dice == 5 ? std::optional<BusDuration>(0s) : std::nullopt);
        --out[d.message.key];
      } else if (dice < 8) {
        --out[d.message.key];  // abandoned: its lease will expire
      } else {
        keep.push_back(std::move(d));
      }
    }
    mine = std::move(keep);
    h.Advance(1s);
    // Deliveries whose lease ran out are no longer out (their receipts are stale by now).
    for (auto& batch : held) {
      std::erase_if(batch, [&](const Delivery& d) {
        if (d.lease_expires > h.now) return false;
        --out[d.message.key];
        return true;
      });
    }
  }
  EXPECT_EQ(acked, kKeys * kPerKey);
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(next["key" + std::to_string(k)], kPerKey);
}

}  // namespace
}  // namespace ferry::bus
