#include "bus/nats/nats_names.hpp"

#include <gtest/gtest.h>

namespace ferry::bus::nats {
namespace {

TEST(NatsNames, EscapesEverythingButLettersDigitsAndDash) {
  EXPECT_EQ(EscapeName("orders-2"), "orders-2");
  EXPECT_EQ(EscapeName("a.b_c"), "a_2Eb_5Fc");
}

TEST(NatsNames, EscapingIsOneToOne) {
  for (std::string name : {"a", "a.b", "a_2Eb", "a_b", "_", "x__y", "Z.9-_."}) {
    auto back = UnescapeName(EscapeName(name));
    ASSERT_TRUE(back) << name;
    EXPECT_EQ(*back, name);
  }
  EXPECT_NE(EscapeName("a.b"), EscapeName("a_2Eb"));
}

TEST(NatsNames, UnescapeRefusesWhatEscapeCannotWrite) {
  EXPECT_FALSE(UnescapeName("a.b"));
  EXPECT_FALSE(UnescapeName("a_2"));
  EXPECT_FALSE(UnescapeName("a_zz"));
  EXPECT_FALSE(UnescapeName("a_41"));  // 'A' is never escaped
}

TEST(NatsNames, StreamsSubjectsAndConsumersHaveNoDotInAName) {
  EXPECT_EQ(QueueStream("jobs.v1"), "FERRY_Q_jobs_2Ev1");
  EXPECT_EQ(QueueSubject("jobs.v1"), "ferry.q.jobs_2Ev1");
  EXPECT_EQ(TopicStream("orders"), "FERRY_T_orders");
  EXPECT_EQ(TopicSubjects("orders"), "ferry.t.orders.>");
  EXPECT_EQ(TopicEventSubject("orders"), "ferry.t.orders.e");
  EXPECT_EQ(TopicReplaySubject("orders", "bill.ing"), "ferry.t.orders.r.bill_2Eing");
  EXPECT_EQ(SubscriptionConsumer("bill.ing"), "bill_2Eing");
  EXPECT_EQ(DeadLetterSubject("", "jobs"), "ferry.dlq.q.jobs");
  EXPECT_EQ(DeadLetterSubject("orders", "billing"), "ferry.dlq.s.orders.billing");
  EXPECT_EQ(DeadLetterMsgId("FERRY_Q_jobs", 42), "dlq:FERRY_Q_jobs:42");
}

}  // namespace
}  // namespace ferry::bus::nats
