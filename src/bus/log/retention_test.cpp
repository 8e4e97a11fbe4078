// Retention: whole segments, oldest first, never past the protected sequence unless max_age.
#include <gtest/gtest.h>

#include "bus/log/log.hpp"
#include "bus/log/log_reader.hpp"
#include "bus/log/log_test_support.hpp"

namespace ferry::bus {
namespace {

using namespace std::chrono_literals;
using testing::AppendAcked;
using testing::Payload;
using testing::ReadAll;
using testing::SmallLog;

constexpr std::uint64_t kNothingProtected = UINT64_MAX;

class LogRetentionTest : public ::testing::Test {
 protected:
  // 40 records of 76 bytes in 1 KiB segments: 13 per segment, bases 1, 14, 27, 40.
  void SetUp() override {
    LogOptions options = SmallLog("/log");
    options.clock_us = [this] { return now_us_; };
    auto log = Log::Open(fs_, options);
    ASSERT_TRUE(log.has_value());
    log_ = std::move(*log);
    for (int i = 1; i <= 40; ++i) {
      now_us_ = i * 1'000'000;  // record i written at t = i seconds
      AppendAcked(*log_, Payload(i));
    }
    ASSERT_EQ(log_->segment_count(), 4u);
  }

  std::shared_ptr<FaultInjectionFileSystem> fs_ = std::make_shared<FaultInjectionFileSystem>();
  std::int64_t now_us_ = 0;
  std::unique_ptr<Log> log_;
};

TEST_F(LogRetentionTest, SizeLimitDeletesOldestSegmentsBelowTheProtectedSequence) {
  const std::uint64_t before = log_->total_bytes();
  // 3040 bytes in all; dropping segments 1..13 and 14..26 leaves 1064, under 1100.
  auto result = log_->EnforceRetention({.max_bytes = 1100}, kNothingProtected, now_us_);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 2u);
  EXPECT_EQ(result->records_deleted, 26u);
  EXPECT_EQ(log_->total_bytes(), before - result->bytes_deleted);
  EXPECT_LE(log_->total_bytes(), 1100u);
  EXPECT_EQ(log_->first_sequence(), 27u);
  EXPECT_EQ(fs_->List("/log")->size(), 2u);
  EXPECT_EQ(ReadAll(*log_).size(), 14u);
}

TEST_F(LogRetentionTest, ActiveSegmentStaysWhateverTheLimit) {
  auto result = log_->EnforceRetention({.max_bytes = 1}, kNothingProtected, now_us_);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 3u);
  EXPECT_EQ(log_->first_sequence(), 40u);
  EXPECT_EQ(ReadAll(*log_).size(), 1u);
}

TEST_F(LogRetentionTest, SizeLimitNeverDeletesRecordsAtOrPastTheProtectedSequence) {
  // A consumer still needs record 20 (segment 14..26): only segment 1..13 may go.
  auto result = log_->EnforceRetention({.max_bytes = 1}, 20, now_us_);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 1u);
  EXPECT_EQ(result->unconsumed_dropped, 0u);
  EXPECT_EQ(log_->first_sequence(), 14u);
  EXPECT_EQ((*log_->Get(20))->payload, Payload(20));
}

TEST_F(LogRetentionTest, DeleteConsumedDropsSegmentsWhollyBelowTheProtectedSequence) {
  // No age or size limit: only consumption frees space. Record 20 is still needed, so segment
  // 1..13 goes and 14..26 (holding 20) stays.
  auto kept = log_->EnforceRetention({}, 20, now_us_);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->segments_deleted, 0u);  // without the flag nothing goes
  auto result = log_->EnforceRetention({.delete_consumed = true}, 20, now_us_);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 1u);
  EXPECT_EQ(result->unconsumed_dropped, 0u);
  EXPECT_EQ(log_->first_sequence(), 14u);
  EXPECT_EQ((*log_->Get(20))->payload, Payload(20));
}

TEST_F(LogRetentionTest, ProtectedSequenceAtTheStartKeepsEverything) {
  auto result = log_->EnforceRetention({.max_bytes = 1}, 1, now_us_);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 0u);
  EXPECT_EQ(ReadAll(*log_).size(), 40u);
}

TEST_F(LogRetentionTest, MaxAgeDeletesOldSegmentsEvenIfProtectedAndCountsTheDrops) {
  // At t = 40 s with max_age 20 s, segments whose newest record is older than 20 s go:
  // 1..13 (newest at 13 s) and 14..26 (26 s is not older). Record 5 on is still unconsumed.
  auto result = log_->EnforceRetention({.max_age = 20s}, 5, 40 * 1'000'000);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 1u);
  EXPECT_EQ(result->unconsumed_dropped, 9u);  // records 5..13
  EXPECT_EQ(log_->stats().retention_dropped_unconsumed, 9u);
  EXPECT_EQ(log_->first_sequence(), 14u);
}

TEST_F(LogRetentionTest, YoungSegmentsSurviveMaxAge) {
  auto result = log_->EnforceRetention({.max_age = 100s}, kNothingProtected, 40 * 1'000'000);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 0u);
}

TEST_F(LogRetentionTest, EachDeletionIsMadeDurableWithADirectoryFsync) {
  const std::uint64_t dir_syncs = fs_->dir_syncs();
  auto result = log_->EnforceRetention({.max_bytes = 1}, kNothingProtected, now_us_);
  ASSERT_TRUE(result.has_value());
  ASSERT_GT(result->segments_deleted, 1u);
  // One per unlink, oldest first: no crash can keep an older segment and lose a newer one.
  EXPECT_EQ(fs_->dir_syncs(), dir_syncs + result->segments_deleted);
  ASSERT_TRUE(log_->Close());
  fs_->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  auto reopened = Log::Open(fs_, SmallLog("/log"));
  ASSERT_TRUE(reopened.has_value());
  EXPECT_EQ((*reopened)->segment_count(), 1u);
  EXPECT_EQ((*reopened)->first_sequence(), 40u);
}

TEST_F(LogRetentionTest, ReaderInsideADeletedSegmentFinishesItThenMovesOn) {
  auto reader = log_->NewReader(10);
  EXPECT_EQ((*reader->Next())->sequence, 10u);
  ASSERT_TRUE(log_->EnforceRetention({.max_bytes = 1}, kNothingProtected, now_us_));
  for (std::uint64_t seq = 11; seq <= 13; ++seq) EXPECT_EQ((*reader->Next())->sequence, seq);
  EXPECT_EQ((*reader->Next())->sequence, 40u);  // 14..39 went before the reader got there
}

TEST_F(LogRetentionTest, ReaderBehindRetentionStartsAtTheOldestRecordLeft) {
  ASSERT_TRUE(log_->EnforceRetention({.max_bytes = 1}, 27, now_us_));
  auto reader = log_->NewReader(1);
  EXPECT_EQ((*reader->Next())->sequence, 27u);
}

}  // namespace
}  // namespace ferry::bus
