#include "bus/nats/key_order.hpp"

#include <gtest/gtest.h>

namespace ferry::bus::nats {
namespace {

using std::chrono::seconds;

const BusTime kT0 = BusTime(seconds(1000));

TEST(KeyOrder, OneHeadPerKeyOthersHeldInSequenceOrder) {
  KeyOrder o;
  EXPECT_TRUE(o.Admit("a", 1));
  EXPECT_TRUE(o.Admit("b", 2));   // another key goes out in parallel
  EXPECT_FALSE(o.Admit("a", 5));  // behind a's head
  EXPECT_FALSE(o.Admit("a", 3));  // fetched late (another node's redelivery): still in order
  EXPECT_FALSE(o.Admit("a", 3));  // redelivered while held: counted once
  EXPECT_EQ(o.held(), 2u);
  EXPECT_EQ(o.Settled("a", 1), 3u);
  EXPECT_TRUE(o.Admit("a", 3));  // the new head
  EXPECT_EQ(o.Settled("a", 3), 5u);
  EXPECT_EQ(o.Settled("a", 5), std::nullopt);
  EXPECT_EQ(o.Settled("b", 2), std::nullopt);
  EXPECT_TRUE(o.empty());
  EXPECT_EQ(o.held(), 0u);
}

TEST(KeyOrder, AHeadBackWithJetStreamStaysTheHead) {
  KeyOrder o;
  ASSERT_TRUE(o.Admit("k", 1));
  o.Waiting("k", 1, kT0 + seconds(1));  // nacked with a backoff
  EXPECT_FALSE(o.Admit("k", 2));        // the next one waits for the redelivery
  EXPECT_TRUE(o.Admit("k", 1));         // redelivered: out again
  o.Out("k", 1);
  EXPECT_TRUE(o.ExpireWaiting(kT0 + seconds(10)).empty());  // out here: not given up
  EXPECT_EQ(o.Settled("k", 1), 2u);
}

TEST(KeyOrder, AHeadThatDoesNotComeBackIsGivenUp) {
  KeyOrder o;
  ASSERT_TRUE(o.Admit("k", 1));
  ASSERT_TRUE(o.Admit("j", 7));
  ASSERT_FALSE(o.Admit("k", 2));
  o.Waiting("k", 1, kT0);
  o.Waiting("j", 7, kT0 + seconds(5));
  EXPECT_TRUE(o.ExpireWaiting(kT0).empty());  // not before its due time
  using Promoted = std::vector<std::pair<std::string, std::uint64_t>>;
  EXPECT_EQ(o.ExpireWaiting(kT0 + seconds(1)), (Promoted{{"k", 2}}));
  EXPECT_TRUE(o.Admit("k", 2));
  EXPECT_FALSE(o.Admit("k", 1));  // the old head, late after all: behind the new one
  EXPECT_TRUE(o.ExpireWaiting(kT0 + seconds(6)).empty());  // j: none behind
  EXPECT_TRUE(o.Admit("j", 8));
}

TEST(KeyOrder, SettlingAHeldMessageDropsIt) {
  KeyOrder o;
  ASSERT_TRUE(o.Admit("k", 1));
  ASSERT_FALSE(o.Admit("k", 2));
  EXPECT_EQ(o.Settled("k", 2), std::nullopt);
  EXPECT_EQ(o.held(), 0u);
  EXPECT_EQ(o.Settled("k", 1), std::nullopt);
  EXPECT_TRUE(o.empty());
}

}  // namespace
}  // namespace ferry::bus::nats
