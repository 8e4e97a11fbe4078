// Deleting a subscription: it is gone at once and for good (its directory too, across a
// reopen), settles already under way are answered first, a new one of the same name starts
// fresh, and whatever a crash leaves of a delete (or of a creation) never stops a topic opening.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bus/engine/broker_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::FastQueue;
using testing::Harness;
using testing::Msg;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const Inbox kA = Inbox::Subscription("t", "a");
const Inbox kB = Inbox::Subscription("t", "b");

class SubscriptionDeleteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(h.broker().CreateTopic("t", {}));
    Sub("a");
    Sub("b");
  }
  void Sub(const std::string& name, bool from_beginning = false) {
    SubscriptionOptions o;
    o.delivery = FastQueue().delivery;
    o.delivery.max_deliveries = 1;
    o.from_beginning = from_beginning;
    ASSERT_TRUE(h.broker().CreateSubscription("t", name, o));
  }
  void Emit(const std::string& data) {
    auto r = h.Publish(Destination::Topic("t"), Msg(data));
    ASSERT_TRUE(r) << r.error().message();
  }
  Result<void> Delete(const std::string& name) {
    std::optional<Result<void>> out;
    h.broker().DeleteSubscription("t", name, [&](Result<void> r) { out = std::move(r); });
    if (!h.posts.Await([&] { return out.has_value(); })) {
      return Fail(ErrorCode::kDeadlineExceeded, "delete not answered");
    }
    return *out;
  }
  std::vector<std::string> Data(const Inbox& inbox) {
    std::vector<std::string> out;
    for (const auto& d : h.Receive(inbox)) out.push_back(d.message.data);
    return out;
  }
  std::string SubsDir() const { return h.data_dir() + "/topics/t/subscriptions"; }
  std::vector<std::string> DirEntries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(SubsDir())) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  Harness h;
};

TEST_F(SubscriptionDeleteTest, GoneAtOnceWithItsDirectoryAndStaysGoneAfterReopen) {
  Emit("e1");
  Emit("e2");
  Emit("e3");
  auto leased = h.Receive(kA, 1);  // one in flight, one dead-lettered, one ready
  ASSERT_EQ(leased.size(), 1u);
  auto dead = h.Receive(kA, 1);
  ASSERT_EQ(dead.size(), 1u);
  h.Nack(kA, {dead[0].receipt});
  ASSERT_EQ(h.broker().GetSubscriptionStats("t", "a")->inbox.dead_letters, 1u);

  ASSERT_TRUE(Delete("a"));
  EXPECT_EQ(h.broker().Subscriptions("t").value(), std::vector<std::string>{"b"});
  EXPECT_EQ(h.TryReceive(kA, 1).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(h.broker().GetSubscriptionStats("t", "a").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(h.broker().DeadLetters(kA, 10, 0).error().code(), ErrorCode::kNotFound);
  std::optional<Result<std::vector<SettleOutcome>>> ack;
  h.broker().Ack(kA, {leased[0].receipt}, [&](auto r) { ack = std::move(r); });
  ASSERT_TRUE(h.posts.Await([&] { return ack.has_value(); }));
  ASSERT_FALSE(*ack);
  EXPECT_EQ(ack->error().code(), ErrorCode::kNotFound);
  // Its directory is removed, nothing left beside b's.
  EXPECT_EQ(DirEntries(), std::vector<std::string>{"b"});
  // b never noticed.
  EXPECT_EQ(Data(kB), (std::vector<std::string>{"e1", "e2", "e3"}));

  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  EXPECT_EQ(h.broker().Subscriptions("t").value(), std::vector<std::string>{"b"});
  EXPECT_EQ(DirEntries(), std::vector<std::string>{"b"});
}

TEST_F(SubscriptionDeleteTest, DeletingAgainOrAnUnknownOneIsNotFound) {
  ASSERT_TRUE(Delete("a"));
  auto again = Delete("a");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Delete("nobody").error().code(), ErrorCode::kNotFound);
  std::optional<Result<void>> out;
  h.broker().DeleteSubscription("nope", "a", [&](Result<void> r) { out = std::move(r); });
  ASSERT_TRUE(h.posts.Await([&] { return out.has_value(); }));
  EXPECT_EQ(out->error().code(), ErrorCode::kNotFound);
}

TEST_F(SubscriptionDeleteTest, ARecreatedSubscriptionStartsFresh) {
  Emit("old1");
  Emit("old2");
  auto old = h.Receive(kA, 1);
  ASSERT_EQ(old.size(), 1u);
  h.Nack(kA, {h.Receive(kA, 1).at(0).receipt});  // a dead letter
  ASSERT_TRUE(Delete("a"));

  Sub("a");  // from the next event on, as any new subscription
  Emit("new");
  auto got = h.Receive(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].message.data, "new");
  EXPECT_EQ(got[0].attempt, 1u);
  auto s = h.broker().GetSubscriptionStats("t", "a");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->inbox.dead_letters, 0u);
  EXPECT_EQ(s->inbox.in_flight, 1u);
  // The old subscription's receipt means nothing to the new one.
  EXPECT_NE(h.Ack(kA, {old[0].receipt}), std::vector{SettleOutcome::kOk});

  // From the beginning: every retained event again, each as a first delivery.
  ASSERT_TRUE(Delete("a"));
  Sub("a", /*from_beginning=*/true);
  EXPECT_EQ(Data(kA), (std::vector<std::string>{"old1", "old2", "new"}));
  h.Reopen();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  EXPECT_EQ(h.broker().Subscriptions("t").value(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(SubscriptionDeleteTest, SettlesUnderWayAreAnsweredBeforeTheDelete) {
  Emit("e1");
  auto got = h.Receive(kA, 1);
  ASSERT_EQ(got.size(), 1u);
  std::vector<std::string> order;
  std::optional<Result<std::vector<SettleOutcome>>> ack;
  std::optional<Result<void>> deleted;
  h.broker().Ack(kA, {got[0].receipt}, [&](auto r) {
    ack = std::move(r);
    order.push_back("ack");
  });
  h.broker().DeleteSubscription("t", "a", [&](Result<void> r) {
    deleted = std::move(r);
    order.push_back("delete");
  });
  ASSERT_TRUE(h.posts.Await([&] { return ack.has_value() && deleted.has_value(); }));
  ASSERT_TRUE(*ack);
  EXPECT_EQ(**ack, std::vector{SettleOutcome::kOk});
  EXPECT_TRUE(*deleted);
  EXPECT_EQ(order, (std::vector<std::string>{"ack", "delete"}));
}

TEST_F(SubscriptionDeleteTest, CreatingItAgainBeforeTheDeleteIsAnsweredIsRefused) {
  std::optional<Result<void>> deleted;
  h.broker().DeleteSubscription("t", "a", [&](Result<void> r) { deleted = std::move(r); });
  SubscriptionOptions o;
  auto early = h.broker().CreateSubscription("t", "a", o);
  ASSERT_FALSE(early);
  EXPECT_EQ(early.error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(h.posts.Await([&] { return deleted.has_value(); }));
  ASSERT_TRUE(*deleted);
  EXPECT_TRUE(h.broker().CreateSubscription("t", "a", o));
}

TEST_F(SubscriptionDeleteTest, ACrashAfterTheRenameLeavesNothingBehind) {
  // The commit point of a delete is the rename of the directory; a crash before it leaves the
  // subscription whole, after it leaves the renamed tree, which the next open removes.
  Emit("e1");
  h.Close();
  fs::rename(SubsDir() + "/a", SubsDir() + "/a~deleted-00000000000000ff");
  h.Open();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  EXPECT_EQ(h.broker().Subscriptions("t").value(), std::vector<std::string>{"b"});
  EXPECT_EQ(DirEntries(), std::vector<std::string>{"b"});
  EXPECT_EQ(Data(kB), std::vector<std::string>{"e1"});
}

TEST_F(SubscriptionDeleteTest, ASubscriptionWithoutStateIsACreationCutShortAndIsDropped) {
  // A crash between creating the directory and writing the first state record (options,
  // start): nothing to recover, and no reason to refuse to start.
  h.Close();
  fs::create_directories(SubsDir() + "/half/state");
  fs::create_directories(SubsDir() + "/empty/state");
  std::ofstream(SubsDir() + "/empty/state/00000000000000000001.seg").close();
  h.Open();
  ASSERT_TRUE(h.broker().CreateTopic("t", {}));
  EXPECT_EQ(h.broker().Subscriptions("t").value(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(DirEntries(), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace ferry::bus
