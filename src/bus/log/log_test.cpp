#include "bus/log/log.hpp"

#include <gtest/gtest.h>

#include "bus/log/log_reader.hpp"
#include "bus/log/log_test_support.hpp"
#include "bus/log/record_format.hpp"

namespace ferry::bus {
namespace {

using testing::AppendAcked;
using testing::Payload;
using testing::ReadAll;
using testing::SmallLog;
using testing::TempDir;

std::unique_ptr<Log> OpenLog(const LogOptions& options) {
  auto log = Log::Open(PosixFileSystem::Default(), options);
  EXPECT_TRUE(log.has_value()) << (log ? "" : log.error().message());
  return log ? std::move(*log) : nullptr;
}

TEST(LogTest, AppendedRecordsReadBackInOrder) {
  TempDir dir;
  auto log = OpenLog(SmallLog(dir.path()));
  for (int i = 1; i <= 5; ++i)
    EXPECT_EQ(AppendAcked(*log, Payload(i)), static_cast<std::uint64_t>(i));
  const auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(records[i].sequence, static_cast<std::uint64_t>(i + 1));
    EXPECT_EQ(records[i].payload, Payload(i + 1));
  }
}

TEST(LogTest, FlagsAndTimestampsRoundTrip) {
  TempDir dir;
  LogOptions options = SmallLog(dir.path());
  options.clock_us = [] { return std::int64_t{1234567}; };
  auto log = OpenLog(options);
  ASSERT_TRUE(log->Append("x", 0xBEEF).has_value());
  ASSERT_TRUE(log->Sync());
  const auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].flags, 0xBEEFu);
  EXPECT_EQ(records[0].timestamp_us, 1234567);
}

TEST(LogTest, RollsSegmentsAtTheConfiguredSize) {
  TempDir dir;
  auto log = OpenLog(SmallLog(dir.path()));  // 1 KiB segments, 76-byte frames
  for (int i = 1; i <= 100; ++i) AppendAcked(*log, Payload(i));
  EXPECT_GE(log->segment_count(), 7u);
  auto names = PosixFileSystem::Default()->List(dir.path());
  std::erase(*names, "LOCK");
  EXPECT_EQ(names->size(), log->segment_count());
  EXPECT_TRUE(std::find(names->begin(), names->end(), "00000000000000000001.seg") != names->end());
  EXPECT_EQ(ReadAll(*log).size(), 100u);
  // Closed, the files hold records only (the active one had zeros written ahead).
  ASSERT_TRUE(log->Close());
  for (const auto& name : *names) {
    EXPECT_LE(*PosixFileSystem::Default()->FileSize(JoinPath(dir.path(), name)), 1024u) << name;
  }
}

TEST(LogTest, ReopenAfterCleanCloseKeepsRecordsAndContinuesSequences) {
  TempDir dir;
  {
    auto log = OpenLog(SmallLog(dir.path()));
    for (int i = 1; i <= 30; ++i) AppendAcked(*log, Payload(i));
    ASSERT_TRUE(log->Close());
  }
  auto log = OpenLog(SmallLog(dir.path()));
  EXPECT_TRUE(log->recovery_report().corruptions.empty());
  EXPECT_EQ(log->recovery_report().records, 30u);
  EXPECT_EQ(log->last_sequence(), 30u);
  EXPECT_EQ(AppendAcked(*log, Payload(31)), 31u);
  const auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 31u);
  EXPECT_EQ(records.back().payload, Payload(31));
}

TEST(LogTest, GetFindsEverySequenceThroughTheSparseIndex) {
  TempDir dir;
  auto log = OpenLog(SmallLog(dir.path()));
  for (int i = 1; i <= 60; ++i) AppendAcked(*log, Payload(i, 10 + i % 13));
  for (std::uint64_t seq = 1; seq <= 60; ++seq) {
    auto record = log->Get(seq);
    ASSERT_TRUE(record.has_value());
    ASSERT_TRUE(record->has_value()) << seq;
    EXPECT_EQ((*record)->payload, Payload(seq, 10 + seq % 13));
  }
  EXPECT_FALSE(log->Get(61)->has_value());
}

TEST(LogTest, ReaderStartsAtAGivenSequenceAndFollowsNewAppends) {
  TempDir dir;
  auto log = OpenLog(SmallLog(dir.path()));
  for (int i = 1; i <= 20; ++i) AppendAcked(*log, Payload(i));
  auto reader = log->NewReader(15);
  for (std::uint64_t seq = 15; seq <= 20; ++seq) EXPECT_EQ((*reader->Next())->sequence, seq);
  EXPECT_FALSE(reader->Next()->has_value());
  AppendAcked(*log, Payload(21));
  EXPECT_EQ((*reader->Next())->sequence, 21u);
}

TEST(LogTest, BatchModeReadersSeeOnlyDurableRecords) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = Log::Open(fs, SmallLog("/log"));
  ASSERT_TRUE(log.has_value());
  fs->PauseSyncs();
  auto seq = (*log)->Append("not yet");
  ASSERT_TRUE(seq.has_value());
  EXPECT_FALSE((*log)->Get(*seq)->has_value());
  fs->ResumeSyncs();
  ASSERT_TRUE((*log)->WaitDurable(*seq));
  EXPECT_TRUE((*log)->Get(*seq)->has_value());
}

TEST(LogTest, DamageThatAppearsAfterOpenIsAnErrorForTheReader) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = Log::Open(fs, SmallLog("/log"));
  ASSERT_TRUE(log.has_value());
  for (int i = 1; i <= 3; ++i) AppendAcked(**log, Payload(i));
  ASSERT_TRUE(fs->CorruptByte("/log/00000000000000000001.seg", kRecordHeaderSize + 76 + 1, 4));
  auto reader = (*log)->NewReader(1);
  EXPECT_EQ((*reader->Next())->sequence, 1u);
  auto damaged = reader->Next();
  ASSERT_FALSE(damaged.has_value());
  EXPECT_EQ(damaged.error().code(), ErrorCode::kIo);
}

TEST(LogTest, OversizedRecordIsRejected) {
  TempDir dir;
  LogOptions options = SmallLog(dir.path());
  options.max_record_bytes = 100;
  auto log = OpenLog(options);
  auto r = log->Append(std::string(101, 'x'));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(log->stats().rejected_too_large, 1u);
  EXPECT_TRUE(log->Append(std::string(100, 'x')).has_value());
}

TEST(LogTest, AppendPastMaxTotalBytesIsResourceExhausted) {
  TempDir dir;
  LogOptions options = SmallLog(dir.path());
  options.max_total_bytes = 3 * (kRecordHeaderSize + 40);
  auto log = OpenLog(options);
  for (int i = 1; i <= 3; ++i) AppendAcked(*log, Payload(i));
  auto r = log->Append(Payload(4));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kFull);
  EXPECT_EQ(log->stats().rejected_full, 1u);
  EXPECT_EQ(ReadAll(*log).size(), 3u);
}

TEST(LogTest, OpenRejectsOptionsThatCannotWork) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  LogOptions no_dir;
  EXPECT_EQ(Log::Open(fs, no_dir).error().code(), ErrorCode::kInvalidArgument);
  LogOptions interval = SmallLog("/log", Durability::kInterval);
  interval.sync_interval = std::chrono::milliseconds(0);
  EXPECT_EQ(Log::Open(fs, interval).error().code(), ErrorCode::kInvalidArgument);
  LogOptions huge = SmallLog("/log");
  huge.max_record_bytes = kMaxFramePayload + 1;
  EXPECT_EQ(Log::Open(fs, huge).error().code(), ErrorCode::kInvalidArgument);
}

TEST(LogTest, AppendAfterCloseFails) {
  TempDir dir;
  auto log = OpenLog(SmallLog(dir.path()));
  AppendAcked(*log, "a");
  ASSERT_TRUE(log->Close());
  auto r = log->Append("b");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(LogTest, SecondOpenOfTheSameDirectoryIsRefusedUntilClose) {
  TempDir dir;
  auto log = OpenLog(SmallLog(dir.path()));
  auto second = Log::Open(PosixFileSystem::Default(), SmallLog(dir.path()));
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error().code(), ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(log->Close());
  EXPECT_TRUE(Log::Open(PosixFileSystem::Default(), SmallLog(dir.path())).has_value());
}

TEST(LogTest, IgnoresFilesThatAreNotSegments) {
  TempDir dir;
  ASSERT_TRUE((*PosixFileSystem::Default()->OpenWritable(JoinPath(dir.path(), "notes.txt")))
                  ->Append("hello"));
  auto log = OpenLog(SmallLog(dir.path()));
  EXPECT_EQ(log->recovery_report().segments, 0u);
  EXPECT_EQ(AppendAcked(*log, "a"), 1u);
}

}  // namespace
}  // namespace ferry::bus
