// De-duplication by message id: within the window, after it, across a reopen, and the
// duplicate's answer waiting for the original to be durable.
#include <gtest/gtest.h>

#include <set>

#include "bus/engine/broker_test_support.hpp"
#include "bus/engine/channel.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using testing::PostQueue;
using testing::SmallLog;
using namespace std::chrono_literals;

const Inbox kQ = Inbox::Queue("q");

TEST(DedupeTest, SameIdWithinTheWindowIsStoredOnce) {
  Harness h;
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  const PublishResult first = h.MustPublish("q", Msg("one", "", "id-1"));
  h.Advance(9min);
  const PublishResult second = h.MustPublish("q", Msg("two", "", "id-1"));
  EXPECT_FALSE(first.duplicate);
  EXPECT_TRUE(second.duplicate);
  EXPECT_EQ(second.sequence, first.sequence);
  EXPECT_EQ(second.id, "id-1");
  auto got = h.Receive(kQ);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "one");
  EXPECT_EQ(h.broker().GetQueueStats("q")->inbox.duplicates, 1u);
}

TEST(DedupeTest, SameIdAfterTheWindowIsStoredAgain) {
  Harness h;
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  h.MustPublish("q", Msg("one", "", "id-1"));
  h.Advance(10min);
  const PublishResult again = h.MustPublish("q", Msg("two", "", "id-1"));
  EXPECT_FALSE(again.duplicate);
  EXPECT_EQ(again.sequence, 2u);
}

TEST(DedupeTest, DedupeSurvivesReopen) {
  Harness h;
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  for (int i = 0; i < 20; ++i) h.MustPublish("q", Msg("m", "", "id-" + std::to_string(i)));
  h.Advance(5min);
  h.MustPublish("q", Msg("m", "", "late"));
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  EXPECT_TRUE(h.MustPublish("q", Msg("m", "", "id-3")).duplicate);
  EXPECT_TRUE(h.MustPublish("q", Msg("m", "", "late")).duplicate);
  h.now += 6min;  // id-0..19 are out of the window now; "late" is not
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  EXPECT_FALSE(h.MustPublish("q", Msg("m", "", "id-4")).duplicate);
  EXPECT_TRUE(h.MustPublish("q", Msg("m", "", "late")).duplicate);
}

TEST(DedupeTest, DuplicateIsAnsweredOnlyOnceTheOriginalIsDurable) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  Harness h(fs);
  ASSERT_TRUE(h.broker().CreateQueue("q", FastQueue()));
  const std::uint64_t syncs_before = fs->file_syncs();
  std::vector<std::string> answers;
  std::vector<std::uint64_t> syncs_at_answer;
  for (const char* who : {"original", "duplicate"}) {
    h.broker().Publish(Destination::Queue("q"), Msg("x", "", "id"),
                       [&, who](Result<PublishResult> r) {
                         ASSERT_TRUE(r);
                         answers.push_back(who);
                         syncs_at_answer.push_back(fs->file_syncs());
                       });
  }
  EXPECT_TRUE(answers.empty());  // answers are posted, never given inside Publish
  ASSERT_TRUE(h.posts.Await([&] { return answers.size() == 2; }));
  EXPECT_EQ(answers, (std::vector<std::string>{"original", "duplicate"}));
  // Both answers came only after the original's fsync.
  for (const std::uint64_t syncs : syncs_at_answer) EXPECT_GT(syncs, syncs_before);
}

TEST(DedupeTest, GeneratedIdsAreNotIndexedAndPublisherIdsAreAcrossReopen) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  PostQueue posts;
  const auto now = std::chrono::system_clock::now();
  const Channel::Env env{.clock = [now] { return now; },
                         .post = posts.Fn(),
                         .rng = std::make_shared<std::mt19937_64>(7),
                         .dedupe_window = 10min};
  const LogOptions log_options = SmallLog("/q");
  const auto open = [&] {
    auto channel = Channel::Open(fs, log_options, StorageOptions{}, env);
    EXPECT_TRUE(channel.has_value());
    return channel ? std::move(*channel) : nullptr;
  };
  auto channel = open();
  int answered = 0;
  std::set<std::string> generated;
  for (int i = 0; i < 30; ++i) {
    channel->Publish(Msg("m", "", i % 3 == 0 ? "mine-" + std::to_string(i) : ""),
                     [&](Result<PublishResult> r) {
                       ASSERT_TRUE(r.has_value());
                       if (r->id.rfind("mine-", 0) != 0) generated.insert(r->id);
                       ++answered;
                     });
  }
  ASSERT_TRUE(posts.Await([&] { return answered == 30; }));
  EXPECT_EQ(generated.size(), 20u);  // distinct
  for (const std::string& id : generated) EXPECT_EQ(id.size(), 32u) << id;
  EXPECT_EQ(channel->dedupe_ids(), 10u);  // only the ten the publisher chose
  channel.reset();
  channel = open();
  EXPECT_EQ(channel->dedupe_ids(), 10u);  // the rebuild skips generated ones too
}

TEST(DedupeTest, TopicsDedupeToo) {
  Harness h;
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  EXPECT_FALSE(h.Publish(Destination::Topic("t"), Msg("x", "", "e1"))->duplicate);
  EXPECT_TRUE(h.Publish(Destination::Topic("t"), Msg("x", "", "e1"))->duplicate);
  EXPECT_EQ(h.broker().GetTopicStats("t")->duplicates, 1u);
}

}  // namespace
}  // namespace ferry::bus
