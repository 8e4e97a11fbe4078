#include "bus/engine/state_checkpoint.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "bus/engine/message_codec.hpp"

namespace ferry::bus {
namespace {

using Fed = CheckpointAssembler::Fed;

StateCheckpoint Sample(std::size_t dead_letters) {
  StateCheckpoint cp;
  cp.floor = 40;
  cp.options = EncodeSubscriptionOptions(SubscriptionOptions{});
  cp.settled.Insert(41, 45);
  cp.settled.Insert(50, 1'000'000);
  cp.entries.push_back({.sequence = 12, .attempt = 1, .revived = true});
  cp.entries.push_back({.sequence = 40, .attempt = 2, .nacks = 1, .retry_at_us = -5});
  cp.entries.push_back({.sequence = 46, .attempt = 3, .in_flight = true});
  for (std::size_t i = 0; i < dead_letters; ++i) {
    cp.dead.push_back({.sequence = 1000 + i,
                       .attempts = 5,
                       .at_us = 1'700'000'000'000'000,
                       .reason = "max deliveries (5) exceeded after lease expiry",
                       .id = "id-" + std::to_string(i),
                       .key = i % 2 ? "" : "key"});
  }
  return cp;
}

// Through the wire format, as recovery sees the records.
std::vector<StateRecord> RoundTrip(const std::vector<StateRecord>& records) {
  std::vector<StateRecord> out;
  for (const StateRecord& r : records) {
    auto decoded = DecodeStateRecord(EncodeStateRecord(r));
    EXPECT_TRUE(decoded.has_value());
    if (decoded) out.push_back(std::move(*decoded));
  }
  return out;
}

void ExpectSame(const StateCheckpoint& a, const StateCheckpoint& b) {
  EXPECT_EQ(a.floor, b.floor);
  EXPECT_EQ(a.options, b.options);
  EXPECT_EQ(a.settled.ranges(), b.settled.ranges());
  ASSERT_EQ(a.entries.size(), b.entries.size());
  for (std::size_t i = 0; i < a.entries.size(); ++i) {
    EXPECT_EQ(a.entries[i].sequence, b.entries[i].sequence);
    EXPECT_EQ(a.entries[i].attempt, b.entries[i].attempt);
    EXPECT_EQ(a.entries[i].nacks, b.entries[i].nacks);
    EXPECT_EQ(a.entries[i].in_flight, b.entries[i].in_flight);
    EXPECT_EQ(a.entries[i].revived, b.entries[i].revived);
    EXPECT_EQ(a.entries[i].retry_at_us, b.entries[i].retry_at_us);
  }
  ASSERT_EQ(a.dead.size(), b.dead.size());
  for (std::size_t i = 0; i < a.dead.size(); ++i) {
    EXPECT_EQ(a.dead[i].sequence, b.dead[i].sequence);
    EXPECT_EQ(a.dead[i].attempts, b.dead[i].attempts);
    EXPECT_EQ(a.dead[i].at_us, b.dead[i].at_us);
    EXPECT_EQ(a.dead[i].reason, b.dead[i].reason);
    EXPECT_EQ(a.dead[i].id, b.dead[i].id);
    EXPECT_EQ(a.dead[i].key, b.dead[i].key);
  }
}

TEST(StateCheckpointTest, RoundTripsThroughTheStateRecords) {
  const StateCheckpoint cp = Sample(3);
  const auto records = RoundTrip(EncodeCheckpoint(cp, 64 * 1024));
  ASSERT_EQ(records.size(), 2u);  // the header and one part
  CheckpointAssembler assembler;
  EXPECT_EQ(assembler.Feed(records[0]), Fed::kConsumed);
  ASSERT_EQ(assembler.Feed(records[1]), Fed::kComplete);
  ExpectSame(assembler.Take(), cp);
}

TEST(StateCheckpointTest, ABigStateIsSplitIntoPartsUnderTheLimit) {
  const StateCheckpoint cp = Sample(5000);
  const auto records = RoundTrip(EncodeCheckpoint(cp, 4096));
  ASSERT_GT(records.size(), 20u);
  EXPECT_EQ(records[0].sequence, records.size() - 1);
  CheckpointAssembler assembler;
  for (std::size_t i = 0; i < records.size(); ++i) {
    EXPECT_LE(EncodeStateRecord(records[i]).size(), 4096u + 64);
    const Fed fed = assembler.Feed(records[i]);
    EXPECT_EQ(fed, i + 1 == records.size() ? Fed::kComplete : Fed::kConsumed) << i;
  }
  ExpectSame(assembler.Take(), cp);
}

TEST(StateCheckpointTest, AnEmptyStateIsTheHeaderAlone) {
  StateCheckpoint cp;
  cp.floor = 7;
  const auto records = EncodeCheckpoint(cp, 4096);
  ASSERT_EQ(records.size(), 1u);
  CheckpointAssembler assembler;
  ASSERT_EQ(assembler.Feed(records[0]), Fed::kComplete);
  EXPECT_EQ(assembler.Take().floor, 7u);
}

TEST(StateCheckpointTest, ACheckpointCutShortByACrashIsAbandoned) {
  const auto records = EncodeCheckpoint(Sample(5000), 4096);
  ASSERT_GT(records.size(), 3u);
  CheckpointAssembler assembler;
  for (std::size_t i = 0; i + 1 < records.size(); ++i) {
    EXPECT_EQ(assembler.Feed(records[i]), Fed::kConsumed);
  }
  EXPECT_TRUE(assembler.reading());  // the log ends here: a torn checkpoint
  // After the restart new records follow the torn one: they are applied, the torn one dropped.
  EXPECT_EQ(assembler.Feed({.type = StateRecord::Type::kAck, .sequence = 3}), Fed::kOther);
  EXPECT_FALSE(assembler.reading());
  EXPECT_EQ(assembler.abandoned(), 1u);
  // The last part, should it turn up now, belongs to nothing.
  EXPECT_EQ(assembler.Feed(records.back()), Fed::kConsumed);
  EXPECT_FALSE(assembler.reading());
}

TEST(StateCheckpointTest, AMissingPartAbandonsTheCheckpoint) {
  const auto records = EncodeCheckpoint(Sample(5000), 4096);
  CheckpointAssembler assembler;
  EXPECT_EQ(assembler.Feed(records[0]), Fed::kConsumed);
  EXPECT_EQ(assembler.Feed(records[2]), Fed::kConsumed);  // part 1 where part 0 was due
  EXPECT_FALSE(assembler.reading());
  EXPECT_EQ(assembler.abandoned(), 1u);
  // A later complete checkpoint still counts.
  Fed fed = Fed::kOther;
  for (const StateRecord& record : records) fed = assembler.Feed(record);
  EXPECT_EQ(fed, Fed::kComplete);
}

TEST(StateCheckpointTest, DamagedPartAbandonsTheCheckpoint) {
  auto records = EncodeCheckpoint(Sample(10), 4096);
  ASSERT_EQ(records.size(), 2u);
  records[1].text.resize(records[1].text.size() - 3);
  CheckpointAssembler assembler;
  EXPECT_EQ(assembler.Feed(records[0]), Fed::kConsumed);
  EXPECT_EQ(assembler.Feed(records[1]), Fed::kConsumed);
  EXPECT_FALSE(assembler.reading());
  EXPECT_EQ(assembler.abandoned(), 1u);
}

// Seeds for tests/fuzz/bus_record_fuzz.cpp: one input per decoder (the first byte picks it).
// Run with FERRY_WRITE_BUS_RECORD_CORPUS=1 from the repository root to rewrite them.
TEST(StateCheckpointTest, WritesRecordSeedCorpusWhenAsked) {
  if (std::getenv("FERRY_WRITE_BUS_RECORD_CORPUS") == nullptr) GTEST_SKIP();
  const std::filesystem::path dir = "tests/fuzz/corpus/bus_record";
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, char decoder, const std::string& bytes) {
    std::ofstream(dir / name, std::ios::binary) << decoder << bytes;
  };
  Message m;
  m.id = "order-1";
  m.key = "customer-7";
  m.type = "order.created";
  m.source = "/orders";
  m.subject = "o-1";
  m.content_type = "application/json";
  m.attributes["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  m.data = R"({"order_id":"o-1","amount":25})";
  m.deliver_at = BusTime(std::chrono::seconds(1'800'000'000));
  write("message", 0, EncodeMessage(m));
  write("message-minimal", 0, EncodeMessage(Message{}));
  write("state-dead", 1,
        EncodeStateRecord({.type = StateRecord::Type::kDead,
                           .sequence = 9,
                           .floor = 3,
                           .attempt = 5,
                           .time_us = 1'700'000'000'000'000,
                           .text = "max deliveries (5) exceeded",
                           .id = "order-1",
                           .key = "customer-7"}));
  write("state-ack", 1, EncodeStateRecord({.type = StateRecord::Type::kAck, .sequence = 4}));
  SubscriptionOptions options;
  options.filter.type = "order.*";
  write("options", 2, EncodeSubscriptionOptions(options));
  options.push = PushOptions{"billing", "/events", std::chrono::seconds(5), 4};
  write("options-push", 2, EncodeSubscriptionOptions(options));
  std::string run;
  for (const StateRecord& r : EncodeCheckpoint(Sample(12), 256)) {
    const std::string encoded = EncodeStateRecord(r);
    run.push_back(static_cast<char>(encoded.size() & 0xff));
    run.push_back(static_cast<char>(encoded.size() >> 8));
    run += encoded;
  }
  write("checkpoint", 3, run);
}

}  // namespace
}  // namespace ferry::bus
