// What a compacting owner needs of the log: Roll starts a fresh segment on demand, and
// DeleteSegmentsBefore drops whole segments below a sequence, oldest first, each unlink durable
// before the next, so a power cut midway leaves a log without a gap.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <set>
#include <thread>
#include <utility>

#include "bus/log/log.hpp"
#include "bus/log/log_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::AppendAcked;
using testing::Payload;
using testing::ReadAll;
using testing::SmallLog;
using namespace std::chrono_literals;

// 40 records of 76 bytes in 1 KiB segments: 13 per segment, bases 1, 14, 27, 40.
std::unique_ptr<Log> OpenFilled(const std::shared_ptr<FaultInjectionFileSystem>& fs) {
  auto log = Log::Open(fs, SmallLog("/log"));
  EXPECT_TRUE(log.has_value());
  if (!log) return nullptr;
  for (int i = 1; i <= 40; ++i) AppendAcked(**log, Payload(i));
  EXPECT_EQ((*log)->segment_count(), 4u);
  return std::move(*log);
}

TEST(LogCompactionTest, RollStartsANewSegmentOnlyAfterARecord) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = Log::Open(fs, SmallLog("/log"));
  ASSERT_TRUE(log.has_value());
  ASSERT_TRUE((*log)->Roll());  // nothing written yet: nothing to roll
  AppendAcked(**log, Payload(1));
  ASSERT_EQ((*log)->segment_count(), 1u);
  ASSERT_TRUE((*log)->Roll());
  ASSERT_TRUE((*log)->Roll());  // the new segment is still empty: no second one
  EXPECT_EQ(AppendAcked(**log, Payload(2)), 2u);
  EXPECT_EQ((*log)->segment_count(), 2u);
  EXPECT_TRUE(fs->Contents("/log/00000000000000000002.seg").has_value());
}

TEST(LogCompactionTest, DeletesOnlyWholeSegmentsBelowTheSequence) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = OpenFilled(fs);
  const std::uint64_t before = log->total_bytes();
  // Segment 14..26 holds 20 and later: it stays.
  auto result = log->DeleteSegmentsBefore(20);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 1u);
  EXPECT_EQ(result->records_deleted, 13u);
  EXPECT_EQ(log->total_bytes(), before - result->bytes_deleted);
  EXPECT_EQ(log->first_sequence(), 14u);
  EXPECT_EQ(log->stats().segments_deleted, 1u);
  EXPECT_EQ(ReadAll(*log).size(), 27u);
}

TEST(LogCompactionTest, ActiveSegmentStays) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = OpenFilled(fs);
  auto result = log->DeleteSegmentsBefore(UINT64_MAX);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->segments_deleted, 3u);
  EXPECT_EQ(log->first_sequence(), 40u);
  EXPECT_EQ(ReadAll(*log).size(), 1u);
}

// DeleteSegmentsBefore(sequence) run by log.RunInBackground: its answer, and the thread that
// gave it.
struct Deleted {
  std::promise<std::pair<Result<RetentionResult>, std::thread::id>> promise;
  std::future<std::pair<Result<RetentionResult>, std::thread::id>> future = promise.get_future();
  void Start(Log& log, std::uint64_t sequence) {
    log.RunInBackground([this, &log, sequence](Result<void> ready) {
      promise.set_value({ready ? log.DeleteSegmentsBefore(sequence) : tl::unexpected(ready.error()),
                         std::this_thread::get_id()});
    });
  }
  std::pair<Result<RetentionResult>, std::thread::id> Get() {
    EXPECT_EQ(future.wait_for(5s), std::future_status::ready);
    return future.get();
  }
};

TEST(LogCompactionTest, DeletesInTheBackgroundOnTheSyncThread) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = OpenFilled(fs);
  Deleted deleted;
  deleted.Start(*log, 20);
  auto [result, thread] = deleted.Get();
  ASSERT_TRUE(result.has_value()) << result.error().message();
  EXPECT_EQ(result->segments_deleted, 1u);
  EXPECT_NE(thread, std::this_thread::get_id());
  EXPECT_EQ(log->first_sequence(), 14u);
  EXPECT_FALSE(fs->Contents("/log/00000000000000000001.seg").has_value());
}

// Tasks run one after the other, in the order given, even when given while the sync thread
// is busy with a round.
TEST(LogCompactionTest, BackgroundTasksRunInOrder) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = OpenFilled(fs);
  fs->PauseSyncs();  // the sync thread stalls in the round of the next append
  ASSERT_TRUE(log->Append(Payload(41)).has_value());
  Deleted first;
  Deleted second;
  first.Start(*log, 20);
  second.Start(*log, UINT64_MAX);
  fs->ResumeSyncs();
  auto [one, thread_one] = first.Get();
  auto [two, thread_two] = second.Get();
  ASSERT_TRUE(one.has_value()) << one.error().message();
  ASSERT_TRUE(two.has_value()) << two.error().message();
  EXPECT_EQ(one->segments_deleted, 1u);
  EXPECT_EQ(two->segments_deleted, 2u);
  EXPECT_EQ(thread_one, thread_two);
  EXPECT_EQ(log->first_sequence(), 40u);
}

// A task runs exactly once: the log failing closed before it started gives it the failure, as
// does a log that has failed or closed already, at once.
TEST(LogCompactionTest, ABackgroundTaskTheLogCannotRunGetsItsClosedError) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = OpenFilled(fs);
  fs->PauseSyncs();  // the sync thread stalls in the round of the next append
  ASSERT_TRUE(log->Append(Payload(41)).has_value());
  fs->AwaitPausedSync();
  fs->FailNextSyncs(1);  // and that round fails the log closed
  Deleted queued;
  queued.Start(*log, 20);
  fs->ResumeSyncs();
  auto [result, thread] = queued.Get();
  ASSERT_FALSE(result.has_value());
  EXPECT_NE(result.error().message().find("failed closed"), std::string::npos)
      << result.error().message();
  EXPECT_EQ(log->segment_count(), 4u);  // nothing deleted
  Deleted late;
  late.Start(*log, 20);
  auto [late_result, late_thread] = late.Get();
  EXPECT_FALSE(late_result.has_value());
  EXPECT_EQ(late_thread, std::this_thread::get_id());
  (void)log->Close();
  Deleted after_close;
  after_close.Start(*log, 20);
  EXPECT_FALSE(after_close.Get().first.has_value());
}

// A failed unlink stops every later deletion, so no newer file goes while an older one may
// stay; what is left on disk is read again at the next open.
TEST(LogCompactionTest, AFailedUnlinkStopsLaterDeletions) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  auto log = OpenFilled(fs);
  fs->ArmCrashAfter(1);  // the unlink fails
  Deleted first;
  first.Start(*log, 20);
  auto [one, thread_one] = first.Get();
  EXPECT_FALSE(one.has_value());
  fs->DisarmCrash();
  Deleted second;
  second.Start(*log, UINT64_MAX);
  auto [two, thread_two] = second.Get();
  ASSERT_FALSE(two.has_value());
  EXPECT_NE(two.error().message().find("deleting segments stopped after"), std::string::npos)
      << two.error().message();
  auto retention = log->EnforceRetention({.max_bytes = 1}, UINT64_MAX, 0);
  ASSERT_FALSE(retention.has_value());
  EXPECT_EQ(log->segment_count(), 3u);  // only the first one left the log; its file stayed
  (void)log->Close();
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  auto reopened = Log::Open(fs, SmallLog("/log"));
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message();
  EXPECT_EQ((*reopened)->first_sequence(), 1u);
  EXPECT_EQ(ReadAll(**reopened).size(), 40u);
}

// kInterval: a background task runs at once but does not bring the timed fsync forward.
TEST(LogCompactionTest, ABackgroundDeletionDoesNotFsyncTheDataEarly) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  LogOptions options = SmallLog("/log", Durability::kInterval);
  options.sync_interval = std::chrono::hours(1);
  auto log = Log::Open(fs, options);
  ASSERT_TRUE(log.has_value());
  for (int i = 1; i <= 40; ++i) AppendAcked(**log, Payload(i));
  ASSERT_EQ((*log)->segment_count(), 4u);
  const std::uint64_t file_syncs = fs->file_syncs();
  Deleted deleted;
  deleted.Start(**log, 20);
  auto [result, thread] = deleted.Get();
  ASSERT_TRUE(result.has_value()) << result.error().message();
  EXPECT_EQ(result->segments_deleted, 1u);
  EXPECT_EQ(fs->file_syncs(), file_syncs);
  EXPECT_EQ((*log)->durable_sequence(), 0u);
}

TEST(LogCompactionTest, RollThenDeleteKeepsWhatFollowsAcrossReopen) {
  auto fs = std::make_shared<FaultInjectionFileSystem>();
  {
    auto log = Log::Open(fs, SmallLog("/log"));
    ASSERT_TRUE(log.has_value());
    for (int i = 1; i <= 5; ++i) AppendAcked(**log, Payload(i));
    ASSERT_TRUE((*log)->Roll());
    const std::uint64_t checkpoint = AppendAcked(**log, "checkpoint");
    ASSERT_EQ(checkpoint, 6u);
    auto result = (*log)->DeleteSegmentsBefore(checkpoint);
    ASSERT_TRUE(result.has_value());
    EXPECT_EQ(result->records_deleted, 5u);
  }
  fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  auto log = Log::Open(fs, SmallLog("/log"));
  ASSERT_TRUE(log.has_value());
  EXPECT_EQ((*log)->first_sequence(), 6u);
  EXPECT_EQ(AppendAcked(**log, "next"), 7u);
  const auto records = ReadAll(**log);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].payload, "checkpoint");
  EXPECT_TRUE((*log)->recovery_report().corruptions.empty());
}

// Power lost at each mutating call of a deletion of three segments: after recovery the log is
// contiguous, holds every record from the sequence on, and starts at a segment boundary. Some
// cut must land between two unlinks with the first one durable (first sequence 14 or 27): the
// deletions reach the disk one by one, oldest first.
TEST(LogCompactionTest, PowerCutDuringDeletionLeavesNoGap) {
  std::set<std::uint64_t> firsts;
  for (std::uint64_t ops = 1; ops <= 8; ++ops) {
    SCOPED_TRACE(ops);
    auto fs = std::make_shared<FaultInjectionFileSystem>(ops);
    {
      auto log = OpenFilled(fs);
      fs->ArmCrashAfter(ops);
      (void)log->DeleteSegmentsBefore(40);
    }
    fs->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
    auto log = Log::Open(fs, SmallLog("/log"));
    ASSERT_TRUE(log.has_value());
    const auto records = ReadAll(**log);
    ASSERT_FALSE(records.empty());
    for (std::size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(records[i].sequence, records[0].sequence + i);
      ASSERT_EQ(records[i].payload, Payload(records[i].sequence));
    }
    EXPECT_EQ(records.back().sequence, 40u);
    firsts.insert(records[0].sequence);
  }
  EXPECT_EQ(firsts, (std::set<std::uint64_t>{1, 14, 27, 40}));
}

}  // namespace
}  // namespace ferry::bus
