// Power loss at random points, on the fault-injection file system: every acknowledged record
// survives, nothing is duplicated, sequences stay continuous. In both durability modes, with
// records written as they are appended and coalesced (written together by Flush).
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "bus/log/log.hpp"
#include "bus/log/log_test_support.hpp"

namespace ferry::bus {
namespace {

using CrashMode = FaultInjectionFileSystem::CrashMode;
constexpr int kPerThread = 30;  // appends per thread and power cycle, at most

struct CrashParam {
  Durability durability;
  bool coalesce;
};

class LogCrashTest : public ::testing::TestWithParam<CrashParam> {
 protected:
  Durability Mode() const { return GetParam().durability; }
  LogOptions Options() const {
    LogOptions options = testing::SmallLog("/log", Mode());
    options.coalesce_writes = GetParam().coalesce;
    options.segment_bytes = 600;  // a roll every few records
    options.sync_interval = std::chrono::milliseconds(1);
    return options;
  }

  // Recovered contents must hold every acknowledged record at its sequence, only records that
  // were appended, each once, with no gap in the sequences.
  void Verify(const Log& log, int iteration) {
    const auto records = testing::ReadAll(log);
    std::set<std::string> seen;
    for (std::size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(records[i].sequence, records[0].sequence + i) << "gap, iteration " << iteration;
      ASSERT_TRUE(written_.contains(records[i].payload)) << "unknown payload " << iteration;
      ASSERT_TRUE(seen.insert(records[i].payload).second) << "duplicate " << records[i].payload;
    }
    std::map<std::uint64_t, std::string> present;
    for (const auto& record : records) present.emplace(record.sequence, record.payload);
    std::lock_guard lock(mu_);
    for (const auto& [sequence, payload] : acked_) {
      const auto it = present.find(sequence);
      ASSERT_TRUE(it != present.end())
          << "acknowledged " << sequence << " lost, iteration " << iteration;
      ASSERT_EQ(it->second, payload) << "iteration " << iteration;
    }
    for (const auto& report : log.recovery_report().corruptions) {
      // A power cut only ever tears the tail.
      EXPECT_EQ(report.action, CorruptionReport::Action::kTruncated) << report.reason;
    }
  }

  // Appends from a few threads until the "power" goes.
  void AppendUntilCrash(Log& log, std::mt19937_64& rng, int iteration) {
    const int threads = std::uniform_int_distribution<int>(1, 4)(rng);
    std::vector<std::string> payloads;
    for (int t = 0; t < threads; ++t) {
      for (int n = 0; n < kPerThread; ++n) {
        const std::size_t size = std::uniform_int_distribution<std::size_t>(0, 150)(rng);
        payloads.push_back(testing::Payload(iteration * 1000 + t * kPerThread + n, size));
        written_.insert(payloads.back());
      }
    }
    std::vector<std::thread> workers;
    std::vector<std::uint64_t> flush_every;  // coalescing: a Flush after this many appends
    for (int t = 0; t < threads; ++t) {
      flush_every.push_back(std::uniform_int_distribution<std::uint64_t>(1, 6)(rng));
    }
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int n = 0; n < kPerThread; ++n) {
          if (GetParam().coalesce && n % flush_every[t] == 0 && !log.Flush()) return;
          const std::string& payload = payloads[t * kPerThread + n];
          auto seq = log.Append(payload, 0, [this, payload](Result<std::uint64_t> r) {
            std::lock_guard lock(mu_);
            if (ignore_acks_) return;
            if (r && acked_.emplace(*r, payload).second) ++acked_total_;
          });
          if (!seq) return;
        }
      });
    }
    for (auto& worker : workers) worker.join();
  }

  std::mutex mu_;
  std::map<std::uint64_t, std::string> acked_;  // sequence -> payload, once acknowledged
  std::set<std::string> written_;               // every payload ever appended
  std::size_t acked_total_ = 0;                 // acknowledgements seen, over all cycles
  bool ignore_acks_ = false;  // kInterval: acks from here on are no promise of durability
};

TEST_P(LogCrashTest, NoAcknowledgedRecordLostAtRandomCrashPoints) {
  std::mt19937_64 rng(20261127);
  auto fs = std::make_shared<FaultInjectionFileSystem>(99);
  for (int iteration = 0; iteration < 200; ++iteration) {
    const CrashMode mode = iteration % 2 ? CrashMode::kKeepRandomPrefix : CrashMode::kDropUnsynced;
    if (rng() % 8 == 0) fs->ArmCrashAfter(1 + rng() % 3);  // sometimes during recovery itself
    auto log = Log::Open(fs, Options());
    if (!log) {
      fs->SimulateCrash(mode);
      continue;
    }
    fs->DisarmCrash();  // recovery had nothing to write
    Verify(**log, iteration);
    if (HasFatalFailure()) return;
    // Keep the log small (and retention in the mix): what it deletes need not survive.
    ASSERT_TRUE((*log)->EnforceRetention({.max_bytes = 4096}, UINT64_MAX, 0).has_value());
    {
      std::lock_guard lock(mu_);
      const std::uint64_t first = (*log)->first_sequence();
      std::erase_if(acked_, [&](const auto& entry) { return entry.first < first; });
    }
    if (Mode() == Durability::kInterval) {
      // Let the timer make a few records durable first, so there is something to keep.
      auto seq = (*log)->Append(testing::Payload(iteration * 1000 + 999));
      written_.insert(testing::Payload(iteration * 1000 + 999));
      ASSERT_TRUE(seq.has_value());
      ASSERT_TRUE((*log)->WaitDurable(*seq));
      std::lock_guard lock(mu_);
      acked_.emplace(*seq, testing::Payload(iteration * 1000 + 999));
    }
    fs->ArmCrashAfter(1 + rng() % 200);
    {
      std::lock_guard lock(mu_);
      ignore_acks_ = false;
    }
    AppendUntilCrash(**log, rng, iteration);
    // A kInterval log acknowledges before fsync, so only batch-mode acks are promises (also
    // those of records still buffered, which closing the log writes and acknowledges).
    if (Mode() == Durability::kInterval) {
      std::lock_guard lock(mu_);
      ignore_acks_ = true;
      const std::uint64_t durable = (*log)->durable_sequence();
      std::erase_if(acked_, [&](const auto& entry) { return entry.first > durable; });
    }
    log->reset();
    fs->SimulateCrash(mode);
  }
  auto log = Log::Open(fs, Options());
  ASSERT_TRUE(log.has_value());
  Verify(**log, -1);
  EXPECT_GT(acked_total_, 200u) << "the test did not exercise acknowledgements";
  std::printf("acknowledged %zu records, %zu written\n", acked_total_, written_.size());
}

INSTANTIATE_TEST_SUITE_P(Modes, LogCrashTest,
                         ::testing::Values(CrashParam{Durability::kBatch, false},
                                           CrashParam{Durability::kInterval, false},
                                           CrashParam{Durability::kBatch, true},
                                           CrashParam{Durability::kInterval, true}),
                         [](const auto& info) {
                           return std::string(info.param.durability == Durability::kBatch
                                                  ? "Batch"
                                                  : "Interval") +
                                  (info.param.coalesce ? "Coalesced" : "");
                         });

}  // namespace
}  // namespace ferry::bus
