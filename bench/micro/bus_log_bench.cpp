// Append throughput of the bus log (src/bus/log) on the real disk: 1 KiB records, with 1 and
// 16 appender threads. Batch mode: each append waits for its group commit, so this measures
// acknowledged appends and shows how many records each fsync carries. Interval mode for
// comparison (acknowledged on write; fsync every 100 ms).
// The log lives in $FERRY_BENCH_DIR (default: the current directory, not /tmp, which may be
// tmpfs) under a fresh bus-log-bench-XXXXXX, removed afterwards.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "bus/log/log.hpp"
#include "bus/log/posix_file_system.hpp"

namespace ferry::bus {
namespace {

std::unique_ptr<Log> g_log;
std::string g_dir;

void OpenBenchLog(Durability durability) {
  const char* base = std::getenv("FERRY_BENCH_DIR");
  std::string pattern =
      (std::filesystem::path(base ? base : ".") / "bus-log-bench-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_dir = pattern;
  LogOptions options;
  options.dir = g_dir;
  options.durability = durability;
  options.sync_interval = std::chrono::milliseconds(100);
  auto log = Log::Open(PosixFileSystem::Default(), options);
  if (!log) std::abort();
  g_log = std::move(*log);
}

void CloseBenchLog(benchmark::State& state) {
  const LogStats stats = g_log->stats();
  state.counters["fsyncs"] = static_cast<double>(stats.sync_rounds);
  state.counters["records_per_fsync"] =
      stats.sync_rounds ? static_cast<double>(stats.synced_records) / stats.sync_rounds : 0;
  (void)g_log->Close();
  g_log.reset();
  std::filesystem::remove_all(g_dir);
}

void AppendLoop(benchmark::State& state, Durability durability) {
  if (state.thread_index() == 0) OpenBenchLog(durability);
  const std::string payload(1024, 'x');
  for (auto _ : state) {
    auto seq = g_log->Append(payload);
    if (!seq) {
      state.SkipWithError(seq.error().message().c_str());
      break;
    }
    if (durability == Durability::kBatch && !g_log->WaitDurable(*seq)) {
      state.SkipWithError("fsync failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(payload.size()));
  if (state.thread_index() == 0) CloseBenchLog(state);
}

void BM_BusLogAppendBatch(benchmark::State& state) { AppendLoop(state, Durability::kBatch); }
void BM_BusLogAppendInterval(benchmark::State& state) { AppendLoop(state, Durability::kInterval); }

BENCHMARK(BM_BusLogAppendBatch)->Threads(1)->Threads(16)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_BusLogAppendInterval)->Threads(1)->Threads(16)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace ferry::bus
