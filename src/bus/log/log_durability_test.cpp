// Durability modes: group commit, interval fsync, fail-closed on fsync errors, ENOSPC.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include "bus/log/log.hpp"
#include "bus/log/log_test_support.hpp"

namespace ferry::bus {
namespace {

using namespace std::chrono_literals;
using testing::AppendAcked;
using testing::Payload;
using testing::ReadAll;
using testing::SmallLog;

class LogDurabilityTest : public ::testing::Test {
 protected:
  std::unique_ptr<Log> Open(LogOptions options) {
    auto log = Log::Open(fs_, options);
    EXPECT_TRUE(log.has_value()) << (log ? "" : log.error().message());
    return log ? std::move(*log) : nullptr;
  }

  std::shared_ptr<FaultInjectionFileSystem> fs_ = std::make_shared<FaultInjectionFileSystem>(3);
};

TEST_F(LogDurabilityTest, BatchAckCallbackRunsOnlyAfterTheFsync) {
  fs_->SetSyncDelay(50ms);
  auto log = Open(SmallLog("/log"));
  std::promise<Result<std::uint64_t>> acked;
  std::uint64_t syncs_at_ack = 0;
  auto seq = log->Append("x", 0, [&](Result<std::uint64_t> r) {
    syncs_at_ack = fs_->file_syncs();
    acked.set_value(std::move(r));
  });
  ASSERT_TRUE(seq.has_value());
  const auto result = acked.get_future().get();
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(*result, *seq);
  EXPECT_GE(syncs_at_ack, 1u);
  EXPECT_GE(log->durable_sequence(), *seq);
}

TEST_F(LogDurabilityTest, BatchAcksArriveInOrderEachWithItsOwnSequence) {
  fs_->SetSyncDelay(5ms);
  auto log = Open(SmallLog("/log"));
  std::mutex mu;
  std::vector<std::uint64_t> acked;
  std::vector<std::uint64_t> appended;
  for (int i = 1; i <= 50; ++i) {
    auto seq = log->Append(Payload(i), 0, [&](Result<std::uint64_t> r) {
      std::lock_guard lock(mu);
      acked.push_back(r ? *r : 0);
    });
    ASSERT_TRUE(seq.has_value());
    appended.push_back(*seq);
  }
  ASSERT_TRUE(log->Close());
  EXPECT_EQ(acked, appended);
  EXPECT_LT(log->stats().sync_rounds, 50u);
  EXPECT_GT(log->stats().max_sync_batch, 1u);
}

TEST_F(LogDurabilityTest, DurableListenerReportsTheWatermark) {
  auto log = Open(SmallLog("/log"));
  std::atomic<std::uint64_t> watermark{0};
  log->SetDurableListener([&](std::uint64_t durable, const Result<void>& status) {
    if (status) watermark = durable;
  });
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(log->Append(Payload(i)).has_value());
  ASSERT_TRUE(log->WaitDurable(3));
  ASSERT_TRUE(log->Close());  // joins the sync thread, so the listener has run
  EXPECT_EQ(watermark.load(), 3u);
}

TEST_F(LogDurabilityTest, GroupCommitSharesFsyncsAmongConcurrentAppenders) {
  LogOptions options = SmallLog("/log");
  options.segment_bytes = 1 << 20;  // one segment: one file fsync per round
  auto log = Open(options);
  fs_->PauseSyncs();  // the disk stalls in the first fsync while every appender arrives
  constexpr int kThreads = 16;
  std::vector<std::thread> threads;
  std::atomic<int> acked{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto seq = log->Append(Payload(t));
      if (seq && log->WaitDurable(*seq)) ++acked;
    });
  }
  while (log->last_sequence() < kThreads) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(log->durable_sequence(), 0u);  // nobody is acknowledged before the fsync
  fs_->ResumeSyncs();
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(acked.load(), kThreads);
  // The stalled fsync covers what was written when it started; one more covers the rest.
  EXPECT_LE(fs_->file_syncs(), 2u);
  const LogStats stats = log->stats();
  EXPECT_EQ(stats.synced_records, static_cast<std::uint64_t>(kThreads));
  EXPECT_LE(stats.sync_rounds, 2u);
  EXPECT_GE(stats.max_sync_batch, static_cast<std::uint64_t>(kThreads) / 2);
}

TEST_F(LogDurabilityTest, FsyncErrorFailsTheLogClosedForever) {
  auto log = Open(SmallLog("/log"));
  AppendAcked(*log, "before");
  fs_->FailNextSyncs(1);
  std::promise<Result<std::uint64_t>> acked;
  auto seq = log->Append("during", 0, [&](Result<std::uint64_t> r) { acked.set_value(r); });
  ASSERT_TRUE(seq.has_value());
  const auto ack = acked.get_future().get();
  ASSERT_FALSE(ack.has_value());
  EXPECT_EQ(ack.error().code(), ErrorCode::kIo);
  auto wait = log->WaitDurable(*seq);
  ASSERT_FALSE(wait.has_value());
  EXPECT_EQ(wait.error().code(), ErrorCode::kIo);
  // The disk works again, but the log stays failed and never retries the fsync.
  const std::uint64_t syncs = fs_->file_syncs();
  auto after = log->Append("after");
  ASSERT_FALSE(after.has_value());
  EXPECT_EQ(after.error().code(), ErrorCode::kIo);
  EXPECT_EQ(log->Sync().error().code(), ErrorCode::kIo);
  EXPECT_FALSE(log->status().has_value());
  EXPECT_FALSE(log->Close().has_value());
  EXPECT_EQ(fs_->file_syncs(), syncs);
  EXPECT_EQ(log->stats().sync_errors, 1u);
  EXPECT_EQ(log->durable_sequence(), 1u);
}

TEST_F(LogDurabilityTest, WriteErrorFailsTheLogClosed) {
  auto log = Open(SmallLog("/log"));
  AppendAcked(*log, "before");
  fs_->ArmCrashAfter(1);  // the next write fails with EIO
  auto r = log->Append("lost");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kIo);
  EXPECT_EQ(log->stats().write_errors, 1u);
  fs_->DisarmCrash();
  EXPECT_EQ(log->Append("after").error().code(), ErrorCode::kIo);
  EXPECT_EQ(log->durable_sequence(), 1u);
}

TEST_F(LogDurabilityTest, NoSpaceIsResourceExhaustedAndKeepsEarlierRecords) {
  LogOptions options = SmallLog("/log");
  options.zero_ahead_bytes = 0;  // so that the full disk meets the next write
  auto log = Open(options);
  for (int i = 1; i <= 3; ++i) AppendAcked(*log, Payload(i));
  fs_->SetSpaceLimit(log->total_bytes() + 50);  // the next 76-byte frame half fits
  auto r = log->Append(Payload(4));
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace);
  EXPECT_TRUE(r.error().message().starts_with(kNoSpaceMessage)) << r.error().message();
  EXPECT_EQ(log->stats().no_space_errors, 1u);
  EXPECT_TRUE(log->status().has_value());  // still open
  EXPECT_EQ(*fs_->FileSize("/log/00000000000000000001.seg"), log->total_bytes());
  fs_->SetSpaceLimit(std::nullopt);  // space was freed
  EXPECT_EQ(AppendAcked(*log, Payload(4)), 4u);
  ASSERT_TRUE(log->Close());
  auto reopened = Open(SmallLog("/log"));
  EXPECT_TRUE(reopened->recovery_report().corruptions.empty());
  const auto records = ReadAll(*reopened);
  ASSERT_EQ(records.size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(records[i].payload, Payload(i + 1));
}

TEST_F(LogDurabilityTest, CoalescedAppendsWaitForFlushAndAreWrittenTogether) {
  LogOptions options = SmallLog("/log", Durability::kInterval);
  options.sync_interval = 1h;
  options.segment_bytes = 8u << 20;
  options.coalesce_writes = true;
  options.zero_ahead_bytes = 0;  // so that the file's size counts what was written
  auto log = Open(options);
  std::vector<std::uint64_t> acked;
  for (int i = 1; i <= 3; ++i) {
    auto seq = log->Append(Payload(i), 0, [&](Result<std::uint64_t> r) {
      ASSERT_TRUE(r.has_value());
      acked.push_back(*r);
    });
    ASSERT_EQ(seq, static_cast<std::uint64_t>(i));
  }
  const std::string segment = "/log/00000000000000000001.seg";
  // Buffered: counted and numbered, but not written, acknowledged or readable.
  EXPECT_TRUE(acked.empty());
  EXPECT_EQ(log->last_sequence(), 3u);
  EXPECT_EQ(log->first_sequence(), 1u);
  EXPECT_EQ(log->acknowledged_sequence(), 0u);
  EXPECT_EQ(*fs_->FileSize(segment), 0u);
  EXPECT_TRUE(log->Read(1, 10)->empty());
  ASSERT_TRUE(log->Flush());
  EXPECT_EQ(acked, (std::vector<std::uint64_t>{1, 2, 3}));
  EXPECT_EQ(log->acknowledged_sequence(), 3u);
  EXPECT_EQ(*fs_->FileSize(segment), log->total_bytes());
  EXPECT_EQ(log->Read(1, 10)->size(), 3u);
  EXPECT_TRUE(log->Flush());  // nothing buffered: nothing to do

  // Past kMaxBufferedBytes an append writes by itself.
  const std::string big(4000, 'b');
  std::uint64_t appended = 0;
  while (appended < Log::kMaxBufferedBytes) {
    ASSERT_TRUE(log->Append(big).has_value());
    appended += big.size();
  }
  EXPECT_GT(*fs_->FileSize(segment), Log::kMaxBufferedBytes);
  // Sync and Close write (and sync) what is still buffered.
  auto last = log->Append("last");
  ASSERT_TRUE(last.has_value());
  ASSERT_TRUE(log->Sync());
  EXPECT_EQ(log->durable_sequence(), *last);
  ASSERT_TRUE(log->Append("after").has_value());
  ASSERT_TRUE(log->Close());
  auto reopened = Open(SmallLog("/log"));
  const auto records = ReadAll(*reopened);
  ASSERT_FALSE(records.empty());
  EXPECT_EQ(records.back().payload, "after");
  EXPECT_EQ(records.back().sequence, *last + 1);
}

TEST_F(LogDurabilityTest, NoSpaceAtAFlushDropsWhatItHeldAndGivesTheSequencesOutAgain) {
  LogOptions options = SmallLog("/log");
  options.coalesce_writes = true;
  options.zero_ahead_bytes = 0;  // so that the full disk meets the flush's write
  auto log = Open(options);
  for (int i = 1; i <= 2; ++i) AppendAcked(*log, Payload(i));
  std::vector<std::pair<std::uint64_t, std::uint64_t>> rejected;
  log->SetRejectListener([&](std::uint64_t first, std::uint64_t last, const Error& error) {
    EXPECT_TRUE(error.message().starts_with(kNoSpaceMessage)) << error.message();
    rejected.emplace_back(first, last);
  });
  fs_->SetSpaceLimit(log->total_bytes() + 100);  // the first buffered frame fits, not all three
  int failed_acks = 0;
  for (int i = 3; i <= 5; ++i) {
    auto seq = log->Append(Payload(i), 0, [&](Result<std::uint64_t> r) {
      EXPECT_FALSE(r.has_value());
      ++failed_acks;
    });
    ASSERT_EQ(seq, static_cast<std::uint64_t>(i));
  }
  auto r = log->Flush();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kNoSpace);
  EXPECT_TRUE(r.error().message().starts_with(kNoSpaceMessage)) << r.error().message();
  EXPECT_EQ(rejected, (std::vector<std::pair<std::uint64_t, std::uint64_t>>{{3, 5}}));
  EXPECT_EQ(failed_acks, 3);
  EXPECT_EQ(log->stats().no_space_errors, 3u);
  EXPECT_EQ(log->stats().appends, 2u);
  EXPECT_TRUE(log->status().has_value());  // still open
  EXPECT_EQ(log->last_sequence(), 2u);
  // The part that fit was cut off again.
  EXPECT_EQ(*fs_->FileSize("/log/00000000000000000001.seg"), log->total_bytes());
  fs_->SetSpaceLimit(std::nullopt);  // space was freed
  EXPECT_EQ(AppendAcked(*log, Payload(6)), 3u);
  ASSERT_TRUE(log->Close());
  auto reopened = Open(SmallLog("/log"));
  EXPECT_TRUE(reopened->recovery_report().corruptions.empty());
  const auto records = ReadAll(*reopened);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].payload, Payload(1));
  EXPECT_EQ(records[1].payload, Payload(2));
  EXPECT_EQ(records[2].payload, Payload(6));
  EXPECT_EQ(records[2].sequence, 3u);
}

TEST_F(LogDurabilityTest, IntervalModeAcknowledgesBeforeTheFsync) {
  LogOptions options = SmallLog("/log", Durability::kInterval);
  options.sync_interval = 1h;
  auto log = Open(options);
  bool acked = false;
  auto seq = log->Append("x", 0, [&](Result<std::uint64_t> r) { acked = r.has_value(); });
  ASSERT_TRUE(seq.has_value());
  EXPECT_TRUE(acked);  // called before Append returned
  EXPECT_EQ(log->acknowledged_sequence(), *seq);
  EXPECT_EQ(log->durable_sequence(), 0u);
  EXPECT_EQ(fs_->file_syncs(), 0u);
  EXPECT_EQ(ReadAll(*log).size(), 1u);  // readers see acknowledged records
  ASSERT_TRUE(log->Sync());
  EXPECT_EQ(log->durable_sequence(), *seq);
}

TEST_F(LogDurabilityTest, IntervalModeSyncsOnItsTimer) {
  LogOptions options = SmallLog("/log", Durability::kInterval);
  options.sync_interval = 20ms;
  auto log = Open(options);
  auto seq = log->Append("x");
  ASSERT_TRUE(seq.has_value());
  ASSERT_TRUE(log->WaitDurable(*seq));  // nobody asked for a sync: the timer did it
  EXPECT_GE(fs_->file_syncs(), 1u);
  EXPECT_EQ(log->stats().sync_rounds, 1u);
}

TEST_F(LogDurabilityTest, CloseInIntervalModeSyncsWhatWasWritten) {
  LogOptions options = SmallLog("/log", Durability::kInterval);
  options.sync_interval = 1h;
  {
    auto log = Open(options);
    for (int i = 1; i <= 5; ++i) ASSERT_TRUE(log->Append(Payload(i)).has_value());
    ASSERT_TRUE(log->Close());
  }
  fs_->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  auto log = Open(options);
  EXPECT_EQ(ReadAll(*log).size(), 5u);
}

TEST_F(LogDurabilityTest, NewSegmentIsDurableOnlyAfterItsDirectoryIsSynced) {
  auto log = Open(SmallLog("/log"));
  const std::uint64_t dir_syncs = fs_->dir_syncs();
  for (int i = 1; i <= 14; ++i) AppendAcked(*log, Payload(i));  // record 14 starts segment 2
  EXPECT_EQ(log->segment_count(), 2u);
  EXPECT_EQ(fs_->dir_syncs(), dir_syncs + 2);
  fs_->SimulateCrash(FaultInjectionFileSystem::CrashMode::kDropUnsynced);
  log.reset();
  log = Open(SmallLog("/log"));
  EXPECT_EQ(ReadAll(*log).size(), 14u);
}

}  // namespace
}  // namespace ferry::bus
