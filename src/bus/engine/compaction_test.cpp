// State log compaction: a checkpoint carries the whole state (floor, attempts, leases, delays,
// per-key blocking, dead letters, replayed dead letters), so reopening from it gives what
// replaying every record gives; the state log stays bounded under endless traffic; and a power
// cut at any point of a checkpoint and the deletion after it recovers the same state.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "bus/engine/broker_test_support.hpp"
#include "bus/engine/state_record.hpp"
#include "bus/log/segment.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");
constexpr std::uint64_t kNoCheckpoints = UINT64_MAX / 4;
constexpr const char* kStateDir = "/bus/queues/q/state";

QueueOptions SmallWindow() {
  QueueOptions q = FastQueue();  // lease 10 s, 3 deliveries, backoff 1 s .. 8 s
  q.delivery.window = 6;         // some history belongs to messages not read into memory
  return q;
}

bool IsPoison(const std::string& id) { return id.starts_with("poison"); }

// A state with everything a checkpoint must carry, all of it durable: a dead letter, a
// replayed dead letter below the floor (in flight again), leases, a nack delay, a message
// blocked behind its key's leased head, a delayed message, acks above the floor, and messages
// past the window. No lease runs out (6 s of 10 s), so no redelivery is left unrecorded.
void BuildState(Harness& h) {
  ASSERT_TRUE(h.broker().CreateQueue("q", SmallWindow()));
  h.MustPublish("q", Msg("p1", "", "poison1"));
  h.MustPublish("q", Msg("p2", "", "poison2"));
  for (int i = 0; i < 10; ++i) {
    const char* key = i % 3 == 0 ? "a" : i % 3 == 1 ? "b" : "";
    h.MustPublish("q", Msg("m", key, "m" + std::to_string(i)));
  }
  Message late = Msg("late", "", "late");
  late.deliver_at = h.now + 1h;
  h.MustPublish("q", late);
  for (int i = 0; i < 6; ++i) h.MustPublish("q", Msg("t", "", "tail" + std::to_string(i)));
  for (int round = 0; round < 3; ++round) {
    for (const Delivery& d : h.Receive(kQ)) {
      const std::string& id = d.message.id;
      if (IsPoison(id)) {
        h.Nack(kQ, {d.receipt}, 0s);
      } else if (id == "m1") {
        h.Nack(kQ, {d.receipt}, 5min);
      } else if (id == "m2" || id == "m5" || id == "m8") {
        h.Ack(kQ, {d.receipt});
      }  // the rest stay leased
    }
    h.Advance(2s);
  }
  ASSERT_EQ(h.Replay(kQ, {"poison1"}), 1u);
  std::vector<Delivery> again = h.Receive(kQ);
  ASSERT_FALSE(again.empty());
  EXPECT_EQ(again[0].message.id, "poison1");
}

// What an inbox shows and does from here on: its gauges, its dead letters, and every delivery
// while a consumer acks everything but poison (nacked) for a while, then replays the dead.
std::vector<std::string> Observe(Harness& h) {
  std::vector<std::string> out;
  const InboxStats s = h.broker().GetQueueStats("q")->inbox;
  out.push_back(fmt::format("ready {} in_flight {} delayed {} blocked {} backlog {} dead {}",
                            s.ready, s.in_flight, s.delayed, s.blocked, s.backlog, s.dead_letters));
  auto dead = h.broker().DeadLetters(kQ, 1000, 0);
  EXPECT_TRUE(dead.has_value());
  for (const DeadLetter& d : dead.value_or(std::vector<DeadLetter>{})) {
    out.push_back(fmt::format("dead {} {} {} '{}' {}", d.sequence, d.message.id, d.attempts,
                              d.reason, d.dead_lettered_at.time_since_epoch().count()));
  }
  for (int round = 0; round < 40; ++round) {
    h.Advance(round == 20 ? 2h : 3s);
    for (const Delivery& d : h.Receive(kQ)) {
      out.push_back(fmt::format("r{} {} #{}", round, d.message.id, d.attempt));
      if (IsPoison(d.message.id)) {
        h.Nack(kQ, {d.receipt}, 0s);
      } else {
        h.Ack(kQ, {d.receipt});
      }
    }
  }
  out.push_back(fmt::format("replayed {}", h.Replay(kQ)));
  for (const Delivery& d : h.Receive(kQ)) out.push_back("again " + d.message.id);
  return out;
}

std::vector<std::string> ReferenceObservation() {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  h.state_checkpoint_bytes = kNoCheckpoints;
  h.Reopen();
  BuildState(h);
  h.Reopen();
  EXPECT_TRUE(h.broker().CreateQueue("q", SmallWindow()));
  return Observe(h);
}

std::set<std::uint64_t> SegmentBases(FaultInjectionFileSystem& fs, const std::string& dir) {
  std::set<std::uint64_t> bases;
  auto names = fs.List(dir);
  EXPECT_TRUE(names.has_value());
  for (const std::string& name : names.value_or(std::vector<std::string>{})) {
    if (auto base = Segment::ParseFileName(name)) bases.insert(*base);
  }
  return bases;
}

TEST(CompactionTest, ReferenceStateHasEverythingACheckpointMustCarry) {
  const std::vector<std::string> seen = ReferenceObservation();
  // The gauges after the reopen: the window (6) holds poison1 (replayed), m0 and m5 (leased
  // when the process stopped: in flight until the first tick), m1 (waiting out its nack
  // delay), m3 and m4 (blocked behind m0 and m1, their keys' heads).
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen[0], "ready 0 in_flight 3 delayed 1 blocked 2 backlog 11 dead 1");
  EXPECT_TRUE(seen[1].starts_with("dead 2 poison2 3 "));
  const auto has = [&](const std::string& line) {
    return std::find(seen.begin(), seen.end(), line) != seen.end();
  };
  EXPECT_TRUE(has("r1 poison1 #2"));  // the replayed dead letter: the lost lease counted
  EXPECT_TRUE(has("r1 m0 #2"));
  EXPECT_TRUE(has("r2 m3 #1"));     // only once m0, its key's head, is acked
  EXPECT_TRUE(has("r20 m1 #2"));    // the nack delay (5 min) outlived the restart
  EXPECT_TRUE(has("r20 late #1"));  // delivered at its deliver_at, not before
  EXPECT_TRUE(has("replayed 2"));   // poison2 and poison1, dead again
}

TEST(CompactionTest, ReopenFromCheckpointsEqualsReplayingEveryRecord) {
  const std::vector<std::string> expected = ReferenceObservation();
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  h.state_checkpoint_bytes = 1;  // a checkpoint after every operation
  h.Reopen();
  BuildState(h);
  h.posts.RunReady();
  EXPECT_GE(h.broker().GetQueueStats("q")->inbox.checkpoints, 2u);
  // The first records are gone: the state comes from a checkpoint.
  EXPECT_FALSE(SegmentBases(*fs, kStateDir).contains(1));
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", SmallWindow()));
  EXPECT_EQ(Observe(h), expected);
}

TEST(CompactionTest, CheckpointAtOpenOfALongLogEqualsReplayingIt) {
  const std::vector<std::string> expected = ReferenceObservation();
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  BuildState(h);  // the default threshold (1 MiB) is far away
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.checkpoints, 0u);
  h.state_checkpoint_bytes = 64;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", SmallWindow()));
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.checkpoints, 1u);
  // Once the checkpoint is fsynced the segments before it go.
  ASSERT_TRUE(h.posts.Await(
      [&] { return h.broker().GetLogStats("queues/q/state").value().segments == 1; }));
  h.state_checkpoint_bytes = kNoCheckpoints;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", SmallWindow()));
  EXPECT_EQ(SegmentBases(*fs, kStateDir).size(), 1u);  // the checkpoint's segment alone
  EXPECT_EQ(Observe(h), expected);
}

// As DeadLetterTest.ReplayedAboveTheFloorKeepsItsAttemptsAcrossRestart, through checkpoints:
// a dead letter replayed above the floor is an ordinary entry of the checkpoint.
TEST(CompactionTest, ReplayedAboveTheFloorKeepsItsAttempts) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  h.state_checkpoint_bytes = 1;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("a", "", "a"));
  h.MustPublish("q", Msg("b", "", "b"));
  auto first = h.Receive(kQ);
  ASSERT_EQ(first.size(), 2u);  // "a" stays leased: the floor stays at its sequence
  h.Nack(kQ, {first[1].receipt}, 0s);
  for (int i = 0; i < 2; ++i) h.Nack(kQ, {h.Receive(kQ).at(0).receipt}, 0s);
  ASSERT_EQ(h.Replay(kQ, {"b"}), 1u);
  ASSERT_EQ(h.Receive(kQ).size(), 1u);
  ASSERT_TRUE(h.posts.Await(
      [&] { return h.broker().GetLogStats("queues/q/state").value().segments == 1; }));
  EXPECT_GE(h.broker().GetQueueStats("q")->inbox.checkpoints, 2u);
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.Advance(1s);
  h.Advance(1s);
  std::map<std::string, std::uint32_t> attempts;
  for (const Delivery& d : h.Receive(kQ)) attempts[d.message.id] = d.attempt;
  EXPECT_EQ(attempts, (std::map<std::string, std::uint32_t>{{"a", 2}, {"b", 2}}));
}

// kInterval acknowledges a record before it is fsynced: the segments before a checkpoint must
// wait for the fsync, or a power cut takes the checkpoint and leaves nothing of the state.
TEST(CompactionTest, IntervalModeDeletesOnlyOnceTheCheckpointIsFsynced) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs, Durability::kInterval);  // fsync every second
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  for (int i = 0; i < 20; ++i) h.MustPublish("q", Msg("x", "", std::to_string(i)));
  for (const Delivery& d : h.Receive(kQ)) h.Ack(kQ, {d.receipt});
  h.Close();  // syncs everything
  const std::set<std::uint64_t> before = SegmentBases(*fs, kStateDir);
  h.state_checkpoint_bytes = 64;
  h.Open();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));  // checkpoints at once
  h.posts.RunReady();
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.checkpoints, 1u);
  EXPECT_TRUE(SegmentBases(*fs, kStateDir).contains(*before.begin()));
  fs->ArmCrashAfter(1);  // the power goes before the timed fsync (unless it just ran)
  h.Close();
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  h.Open();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.Advance(1h);
  EXPECT_TRUE(h.Receive(kQ).empty());  // every ack survived
}

// Power lost at every mutating file operation while a reopened queue writes its checkpoint,
// fsyncs it and deletes the segments before it: whatever survives recovers the same state.
TEST(CompactionTest, PowerCutAnywhereInACheckpointRecoversTheSameState) {
  const std::vector<std::string> expected = ReferenceObservation();
  bool saw_no_checkpoint = false;
  bool saw_both = false;
  bool saw_partly_deleted = false;
  bool saw_compacted = false;
  bool finished = false;
  for (std::uint64_t ops = 1; ops <= 200 && !finished; ++ops) {
    SCOPED_TRACE(ops);
    auto fs = std::make_shared<FaultInjectionFileSystem>(ops);
    Harness h(fs);
    h.segment_bytes = 512;  // several state segments to delete
    h.Reopen();
    BuildState(h);
    h.Close();
    const std::set<std::uint64_t> before = SegmentBases(*fs, kStateDir);
    ASSERT_GE(before.size(), 3u);
    h.state_checkpoint_bytes = 64;
    h.Open();
    fs->ArmCrashAfter(ops);
    (void)h.broker().CreateQueue("q", SmallWindow());  // checkpoints once open
    // The fsync, then the deletion, unless the power goes first.
    h.posts.Await([&] {
      auto stats = h.broker().GetLogStats("queues/q/state");
      return fs->down() || (stats && stats->segments == 1);
    });
    finished = !fs->down();
    h.Close();
    fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);

    const std::set<std::uint64_t> after = SegmentBases(*fs, kStateDir);
    const bool old_first = after.contains(*before.begin());
    const bool new_segment = *after.rbegin() > *before.rbegin();
    const bool all_old = std::includes(after.begin(), after.end(), before.begin(), before.end());
    saw_no_checkpoint |= !new_segment;
    saw_both |= new_segment && all_old;
    saw_partly_deleted |= new_segment && !old_first && *after.begin() <= *before.rbegin();
    saw_compacted |= after.size() == 1 && new_segment;

    h.state_checkpoint_bytes = kNoCheckpoints;
    h.Open();
    ASSERT_TRUE(h.broker().CreateQueue("q", SmallWindow()));
    ASSERT_EQ(Observe(h), expected);
  }
  EXPECT_TRUE(finished) << "some crash point must lie past the deletion";
  EXPECT_TRUE(saw_no_checkpoint);
  EXPECT_TRUE(saw_both);
  EXPECT_TRUE(saw_partly_deleted);
  EXPECT_TRUE(saw_compacted);
}

// Thousands of dead letters make a checkpoint of several records, each well under the log's
// record limit, and all of them come back.
TEST(CompactionTest, ManyDeadLettersSplitIntoSeveralParts) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  h.state_checkpoint_bytes = 4 * 1024;
  h.segment_bytes = 1u << 20;  // room for the whole checkpoint in one segment
  h.Reopen();
  QueueOptions options = FastQueue();
  options.delivery.max_deliveries = 1;
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  constexpr int kDead = 3000;
  const auto id_of = [](int i) { return fmt::format("dead-letter-with-a-longish-id-{:06}", i); };
  for (int i = 0; i < kDead; ++i) h.MustPublish("q", Msg("x", "k" + std::to_string(i), id_of(i)));
  for (;;) {
    auto got = h.Receive(kQ, 500);
    if (got.empty()) break;
    std::vector<std::string> receipts;
    for (const Delivery& d : got) receipts.push_back(d.receipt);
    h.Nack(kQ, receipts, 0s);
  }
  ASSERT_EQ(h.broker().GetQueueStats("q")->inbox.dead_letters, static_cast<std::uint64_t>(kDead));
  // One more checkpoint of the final state, then let it become durable.
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  ASSERT_TRUE(h.posts.Await(
      [&] { return h.broker().GetLogStats("queues/q/state").value().segments == 1; }));
  h.Close();

  // The state log is now one checkpoint: a header and its parts.
  std::size_t parts = 0;
  {
    auto log = Log::Open(fs, LogOptions{.dir = kStateDir});
    ASSERT_TRUE(log.has_value());
    for (const LogRecord& record : testing::ReadAll(**log)) {
      auto decoded = DecodeStateRecord(record.payload);
      ASSERT_TRUE(decoded.has_value());
      if (decoded->type != StateRecord::Type::kCheckpointPart) continue;
      ++parts;
      EXPECT_LE(record.payload.size(), 64u * 1024 + 64);
    }
  }
  EXPECT_GE(parts, 4u);  // ~100 bytes per dead letter

  h.Open();
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  auto dead = h.broker().DeadLetters(kQ, 10'000, 0);
  ASSERT_TRUE(dead.has_value());
  ASSERT_EQ(dead->size(), static_cast<std::size_t>(kDead));
  for (int i = 0; i < kDead; ++i) {
    EXPECT_EQ((*dead)[i].message.id, id_of(i));
    EXPECT_EQ((*dead)[i].message.key, "k" + std::to_string(i));
    EXPECT_EQ((*dead)[i].reason, "max deliveries (1) exceeded: nacked 1 times");
  }
}

TEST(CompactionTest, StateLogStaysBoundedUnderLongAckNackTraffic) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  h.state_checkpoint_bytes = 16 * 1024;
  h.Reopen();
  QueueOptions options = FastQueue();
  options.delivery.max_deliveries = 0;
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  constexpr int kMessages = 1000;
  constexpr std::uint32_t kDeliveriesEach = 20;
  for (int i = 0; i < kMessages; ++i) h.MustPublish("q", Msg("x", "", std::to_string(i)));
  std::uint64_t deliveries = 0;
  std::uint64_t max_bytes = 0;
  std::uint64_t max_segments = 0;
  std::set<std::string> acked;
  while (acked.size() < kMessages) {
    auto got = h.Receive(kQ, 100);
    ASSERT_FALSE(got.empty());
    std::vector<std::string> nack;
    std::vector<std::string> ack;
    for (const Delivery& d : got) {
      ++deliveries;
      if (d.attempt < kDeliveriesEach) {
        nack.push_back(d.receipt);
      } else {
        ack.push_back(d.receipt);
        acked.insert(d.message.id);
      }
    }
    if (!nack.empty()) h.Nack(kQ, nack, 0s);
    if (!ack.empty()) h.Ack(kQ, ack);
    const LogDurabilityStats state = h.broker().GetLogStats("queues/q/state").value();
    max_bytes = std::max(max_bytes, state.bytes);
    max_segments = std::max<std::uint64_t>(max_segments, state.segments);
  }
  EXPECT_EQ(deliveries, kMessages * kDeliveriesEach);
  const QueueStats stats = *h.broker().GetQueueStats("q");
  EXPECT_GT(stats.inbox.checkpoints, 20u);
  EXPECT_GT(h.broker().GetLogStats("queues/q/state")->appends, 40'000u);
  // Without compaction ~2 MB. The live state is at most ~12 KB (1000 entries), so a checkpoint
  // comes every ~24 KB written.
  EXPECT_LT(max_bytes, 48u * 1024);
  EXPECT_LT(max_segments, 16u);  // 4 KiB segments
  // Everything acked stays acked.
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", options));
  h.Advance(1h);
  EXPECT_TRUE(h.Receive(kQ).empty());
}

// One message held back for a day while thousands behind it are acked: the floor is stuck,
// but the checkpoint records the acked run as one range, not one entry per message.
TEST(CompactionTest, AckedRunPastAStuckFloorStaysSmall) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  h.state_checkpoint_bytes = 4 * 1024;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("held", "", "held"));
  h.Nack(kQ, {h.Receive(kQ).at(0).receipt}, 24h);
  for (int i = 0; i < 3000; ++i) h.MustPublish("q", Msg("x", "", std::to_string(i)));
  for (;;) {
    auto got = h.Receive(kQ, 100);
    if (got.empty()) break;
    std::vector<std::string> receipts;
    for (const Delivery& d : got) receipts.push_back(d.receipt);
    h.Ack(kQ, receipts);
  }
  EXPECT_GT(h.broker().GetQueueStats("q")->inbox.checkpoints, 5u);
  // The segments before the last checkpoint go on the log's sync thread.
  EXPECT_TRUE(h.posts.Await([&] {
    return h.broker().GetLogStats("queues/q/state").value().bytes < 16u * 1024;
  })) << h.broker().GetLogStats("queues/q/state").value().bytes;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.backlog, 0u);  // the acked run is skipped
  EXPECT_TRUE(h.Receive(kQ).empty());
  h.Advance(24h);
  auto held = h.Receive(kQ);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].message.id, "held");
  EXPECT_EQ(held[0].attempt, 2u);
}

// A topic subscription whose filter skips most events: the skipped ones are settled too, and
// after a reopen from a checkpoint neither they nor the acked ones come back.
TEST(CompactionTest, FilteredSubscriptionCompacts) {
  Harness h;  // the real disk: subscriptions are found again by listing their directories
  h.state_checkpoint_bytes = 1024;
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  SubscriptionOptions sub;
  sub.delivery = FastQueue().delivery;
  sub.filter.type = "keep";
  ASSERT_TRUE(h.broker().CreateSubscription("t", "s", sub));
  const Inbox inbox = Inbox::Subscription("t", "s");
  std::set<std::string> kept;
  for (int i = 0; i < 600; ++i) {
    Message m = Msg("e", "", "e" + std::to_string(i));
    m.type = i % 10 == 0 ? "keep" : "skip";
    ASSERT_TRUE(h.Publish(Destination::Topic("t"), m));
    for (const Delivery& d : h.Receive(inbox)) {
      kept.insert(d.message.id);
      if (d.message.id != "e0") h.Ack(inbox, {d.receipt});  // e0 stays leased
    }
  }
  EXPECT_EQ(kept.size(), 60u);
  EXPECT_GT(h.broker().GetTopicStats("t")->subscriptions.at(0).inbox.checkpoints, 3u);
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  h.Advance(10s);  // the lease died with the process: a failed attempt, 1 s of backoff
  h.Advance(1s);
  auto got = h.Receive(inbox);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.id, "e0");
  EXPECT_EQ(got[0].attempt, 2u);
}

// Random power cuts while traffic keeps the queue checkpointing (a tiny threshold): nothing
// durably acked comes back, every durably dead-lettered message is still a dead letter, and
// every acknowledged publish is delivered, dead-lettered or was acked.
bool CompactingCrashRound(std::uint64_t seed, std::uint64_t* checkpoints) {
  SCOPED_TRACE(seed);
  auto fs = std::make_shared<FaultInjectionFileSystem>(seed);
  Harness h(fs);
  h.state_checkpoint_bytes = 200;
  h.segment_bytes = 1024;
  h.Reopen();
  EXPECT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  std::set<std::string> publish_acked;
  std::set<std::string> consume_acked;  // acks whose callback said durable
  std::set<std::string> ack_sent;
  std::set<std::string> dead_durable;  // nacked at the last attempt, durably
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 60; ++i) {
    const std::string id = (i % 7 == 3 ? "poison" : "m") + std::to_string(i);
    h.broker().Publish(Destination::Queue("q"), Msg(id, "", id),
                       [&publish_acked, id](Result<PublishResult> r) {
                         if (r) publish_acked.insert(id);
                       });
    if (i == 20) fs->ArmCrashAfter(1 + rng() % 150);
    if (rng() % 3 == 0) h.posts.Await([] { return false; }, 1ms);
    auto got = h.TryReceive(kQ, 3);
    if (!got) continue;
    for (const Delivery& d : *got) {
      const std::string& mid = d.message.id;
      if (IsPoison(mid)) {
        const bool last = d.attempt == 3;
        h.broker().Nack(kQ, {d.receipt}, 0s, [&dead_durable, mid, last](auto r) {
          if (r && r->at(0) == SettleOutcome::kOk && last) dead_durable.insert(mid);
        });
      } else {
        ack_sent.insert(mid);
        h.broker().Ack(kQ, {d.receipt}, [&consume_acked, mid](auto r) {
          if (r && r->at(0) == SettleOutcome::kOk) consume_acked.insert(mid);
        });
      }
    }
  }
  h.posts.Await([] { return false; }, 20ms);
  const bool crashed = fs->down();
  *checkpoints += h.broker().GetQueueStats("q")->inbox.checkpoints;
  h.Close();
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  h.Open();
  EXPECT_TRUE(h.broker().CreateQueue("q", FastQueue()));

  std::map<std::string, int> seen;
  for (int round = 0; round < 40; ++round) {
    for (const Delivery& d : h.Receive(kQ)) {
      ++seen[d.message.id];
      if (IsPoison(d.message.id)) {
        h.Nack(kQ, {d.receipt}, 0s);
      } else {
        h.Ack(kQ, {d.receipt});
      }
    }
    h.Advance(10s);
  }
  std::set<std::string> dead;
  auto letters = h.broker().DeadLetters(kQ, 1000, 0);
  EXPECT_TRUE(letters.has_value());
  for (const DeadLetter& d : letters.value_or(std::vector<DeadLetter>{})) {
    EXPECT_TRUE(IsPoison(d.message.id)) << d.message.id;
    dead.insert(d.message.id);
  }
  for (const std::string& id : consume_acked) EXPECT_FALSE(seen.contains(id)) << id;
  for (const std::string& id : dead_durable) {
    EXPECT_TRUE(dead.contains(id)) << id << " no longer dead-lettered";
    EXPECT_FALSE(seen.contains(id)) << id << " redelivered";
  }
  for (const std::string& id : publish_acked) {
    EXPECT_TRUE(seen.contains(id) || ack_sent.contains(id) || dead.contains(id)) << id << " lost";
  }
  return crashed;
}

TEST(CompactionTest, PowerCutsDuringCompactingTrafficLoseNothingAcknowledged) {
  int crashed = 0;
  std::uint64_t checkpoints = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    crashed += CompactingCrashRound(seed, &checkpoints) ? 1 : 0;
  }
  EXPECT_GE(crashed, 10);       // most rounds cut the power mid-traffic
  EXPECT_GE(checkpoints, 40u);  // ... while checkpoints come and go
}

}  // namespace
}  // namespace ferry::bus
