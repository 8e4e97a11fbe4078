// Recovery on Open: torn tails, damage in the middle, damage in a segment that is not last.
#include <gtest/gtest.h>

#include <algorithm>

#include "bus/log/log.hpp"
#include "bus/log/log_test_support.hpp"
#include "bus/log/record_format.hpp"

namespace ferry::bus {
namespace {

using testing::AppendAcked;
using testing::Payload;
using testing::ReadAll;
using testing::SmallLog;

constexpr std::uint64_t kFrame = kRecordHeaderSize + 40;  // frame of a Payload(i)
const std::string kDir = "/log";
const std::string kFirstSegment = "/log/00000000000000000001.seg";

class LogRecoveryTest : public ::testing::Test {
 protected:
  std::unique_ptr<Log> Open(LogOptions options = SmallLog(kDir)) {
    auto log = Log::Open(fs_, options);
    EXPECT_TRUE(log.has_value()) << (log ? "" : log.error().message());
    return log ? std::move(*log) : nullptr;
  }

  // Writes records 1..n, acknowledged, and closes the log.
  void WriteRecords(int n, LogOptions options = SmallLog(kDir)) {
    auto log = Open(options);
    for (int i = 1; i <= n; ++i) AppendAcked(*log, Payload(i));
    ASSERT_TRUE(log->Close());
  }

  std::shared_ptr<FaultInjectionFileSystem> fs_ = std::make_shared<FaultInjectionFileSystem>(7);
};

// A crash leaves the zeros the writer wrote ahead of its records (WritableFile::ZeroAhead),
// in the last segment and, since cutting them at a roll is not fsynced, in earlier ones too.
// Recovery reads them as unused space: nothing reported, nothing lost, and appends carry on
// right after the last record.
TEST_F(LogRecoveryTest, ZerosWrittenAheadAreNotDamage) {
  auto zeros_at_end = [&](const std::string& path) {
    const std::string data = *fs_->Contents(path);
    return data.size() - (data.find_last_not_of('\0') + 1);
  };
  std::string last_segment;
  {
    auto log = Open();  // 1 KiB segments: 76-byte frames, 13 to a segment
    for (int i = 1; i <= 30; ++i) AppendAcked(*log, Payload(i));
    ASSERT_GE(log->segment_count(), 3u);
    const auto names = fs_->List(kDir);
    for (const std::string& name : *names) {
      if (name.ends_with(".seg")) last_segment = std::max(last_segment, kDir + "/" + name);
    }
    EXPECT_GT(zeros_at_end(last_segment), 0u);
    fs_->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  }
  EXPECT_GT(zeros_at_end(last_segment), 0u);
  EXPECT_GT(zeros_at_end(kFirstSegment), 0u);  // cut at the roll, but that was not synced
  auto log = Open();
  EXPECT_TRUE(log->recovery_report().corruptions.empty());
  EXPECT_EQ(log->recovery_report().truncated_bytes, 0u);
  auto records = ReadAll(*log);
  ASSERT_EQ(records.size(), 30u);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(records[i].payload, Payload(i + 1));
  for (int i = 31; i <= 33; ++i) AppendAcked(*log, Payload(i));
  ASSERT_TRUE(log->Close());
  auto reopened = Open();
  EXPECT_TRUE(reopened->recovery_report().corruptions.empty());
  records = ReadAll(*reopened);
  ASSERT_EQ(records.size(), 33u);
  for (int i = 0; i < 33; ++i) EXPECT_EQ(records[i].payload, Payload(i + 1));
}

TEST_F(LogRecoveryTest, TornTailIsTruncatedAndEveryFsyncedRecordKept) {
  WriteRecords(5);
  // The crash tore record 6: only its magic and part of its header reached the disk.
  auto file = fs_->OpenWritable(kFirstSegment);
  ASSERT_TRUE((*file)->Append(std::string("\xF0\xE7\x0B\x5A", 4) + "partial header"));
  auto log = Open();
  const auto& report = log->recovery_report();
  EXPECT_EQ(report.truncated_bytes, 18u);
  ASSERT_EQ(report.corruptions.size(), 1u);
  EXPECT_EQ(report.corruptions[0].action, CorruptionReport::Action::kTruncated);
  EXPECT_EQ(report.corruptions[0].offset, 5 * kFrame);
  EXPECT_EQ(*fs_->FileSize(kFirstSegment), 5 * kFrame);
  EXPECT_EQ(ReadAll(*log).size(), 5u);
  EXPECT_EQ(AppendAcked(*log, Payload(6)), 6u);
  EXPECT_EQ(ReadAll(*log).back().payload, Payload(6));
}

TEST_F(LogRecoveryTest, FlippedByteInTheMiddleIsReportedAndRecordsAroundItRead) {
  WriteRecords(10);
  // A byte inside record 4's payload rots on disk.
  ASSERT_TRUE(fs_->CorruptByte(kFirstSegment, 3 * kFrame + kRecordHeaderSize + 5, 0x20));
  auto log = Open();
  const auto& report = log->recovery_report();
  ASSERT_EQ(report.corruptions.size(), 1u);
  EXPECT_EQ(report.corruptions[0].segment, kFirstSegment);
  EXPECT_EQ(report.corruptions[0].offset, 3 * kFrame);
  EXPECT_EQ(report.corruptions[0].length, kFrame);
  EXPECT_EQ(report.corruptions[0].reason, "payload checksum mismatch");
  EXPECT_EQ(report.corruptions[0].action, CorruptionReport::Action::kSkipped);
  EXPECT_EQ(report.truncated_bytes, 0u);
  std::vector<std::uint64_t> seqs;
  for (const auto& record : ReadAll(*log)) seqs.push_back(record.sequence);
  EXPECT_EQ(seqs, (std::vector<std::uint64_t>{1, 2, 3, 5, 6, 7, 8, 9, 10}));
  EXPECT_FALSE(log->Get(4)->has_value());
  EXPECT_EQ((*log->Get(5))->payload, Payload(5));
  EXPECT_EQ(AppendAcked(*log, Payload(11)), 11u);
}

TEST_F(LogRecoveryTest, FlippedHeaderByteIsSkippedByResync) {
  WriteRecords(6);
  ASSERT_TRUE(fs_->CorruptByte(kFirstSegment, 2 * kFrame + 12, 0x01));  // record 3's sequence
  auto log = Open();
  ASSERT_EQ(log->recovery_report().corruptions.size(), 1u);
  EXPECT_EQ(log->recovery_report().corruptions[0].reason, "header checksum mismatch");
  EXPECT_EQ(ReadAll(*log).size(), 5u);
}

TEST_F(LogRecoveryTest, DamagedTailOfAnOlderSegmentIsSkippedNotTruncated) {
  WriteRecords(30);  // several 1 KiB segments of 13 records
  const std::uint64_t size = *fs_->FileSize(kFirstSegment);
  ASSERT_TRUE(fs_->CorruptByte(kFirstSegment, size - 3, 0xFF));  // last record of segment 1
  auto log = Open();
  ASSERT_EQ(log->recovery_report().corruptions.size(), 1u);
  EXPECT_EQ(log->recovery_report().corruptions[0].action, CorruptionReport::Action::kSkipped);
  EXPECT_EQ(*fs_->FileSize(kFirstSegment), size);
  const auto records = ReadAll(*log);
  EXPECT_EQ(records.size(), 29u);
  EXPECT_EQ(records.back().sequence, 30u);
}

TEST_F(LogRecoveryTest, EmptyLastSegmentContinuesAtItsBase) {
  WriteRecords(13);  // exactly fills segment 1 (13 * 76 = 988 bytes)
  {
    auto log = Open();
    ASSERT_TRUE(log->Append(Payload(14)).has_value());  // rolls to segment 14
    ASSERT_TRUE(log->Sync());
  }
  // Segment 14 exists (its directory entry was synced) but its record is lost.
  ASSERT_TRUE(fs_->Truncate("/log/00000000000000000014.seg", 0));
  auto log = Open();
  EXPECT_EQ(log->last_sequence(), 13u);
  EXPECT_EQ(AppendAcked(*log, Payload(14)), 14u);
  EXPECT_EQ(ReadAll(*log).size(), 14u);
}

TEST_F(LogRecoveryTest, SegmentsAfterRecordsLostInACrashAreMovedAside) {
  WriteRecords(14);  // segment 1 holds 1..13, segment 14 holds 14
  // The crash lost records 11..13 of segment 1 (never fsynced, so never acknowledged), but
  // the directory entry of segment 14 made it to disk: 14 was never acknowledged either.
  ASSERT_TRUE(fs_->Truncate(kFirstSegment, 10 * kFrame));
  auto log = Open();
  const auto& report = log->recovery_report();
  ASSERT_EQ(report.corruptions.size(), 1u);
  EXPECT_EQ(report.corruptions[0].segment, "/log/00000000000000000014.seg");
  EXPECT_EQ(report.corruptions[0].action, CorruptionReport::Action::kTruncated);
  EXPECT_TRUE(fs_->Contents("/log/00000000000000000014.seg.orphan").has_value());
  EXPECT_EQ(log->last_sequence(), 10u);
  EXPECT_EQ(AppendAcked(*log, Payload(11)), 11u);
  EXPECT_EQ(ReadAll(*log).size(), 11u);
}

TEST_F(LogRecoveryTest, RotAtTheEndOfAnOlderSegmentKeepsTheSegmentsAfterIt) {
  WriteRecords(14);
  ASSERT_TRUE(fs_->CorruptByte(kFirstSegment, 12 * kFrame + kRecordHeaderSize, 0x01));
  auto log = Open();
  EXPECT_EQ(log->last_sequence(), 14u);
  EXPECT_EQ(ReadAll(*log).size(), 13u);  // all but record 13
}

}  // namespace
}  // namespace ferry::bus
