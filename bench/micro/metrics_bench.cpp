// Hot-path costs of src/observability: Counter::Add, Histogram::Observe (one worker slot each),
// and rendering one access-log line (hand writer, and Boost.JSON for comparison).
#include <benchmark/benchmark.h>

#include <array>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <string>

#include "observability/access_log_entry.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::observability {
namespace {

void BM_CounterAdd(benchmark::State& state) {
  static MetricsRegistry registry(8);
  static Counter& counter =
      registry.AddCounter("bench_requests_total", "b", {"route"}).value()->Get("api");
  // Each benchmark thread plays one worker and writes its own slot.
  const auto slot = static_cast<std::size_t>(state.thread_index());
  for (auto _ : state) counter.Add(slot, 1);
  benchmark::DoNotOptimize(counter.Value());
}
BENCHMARK(BM_CounterAdd)->Threads(1)->Threads(2);

void BM_HistogramObserve(benchmark::State& state) {
  static MetricsRegistry registry(8);
  static Histogram& histogram =
      registry.AddHistogram("bench_latency_seconds", "b", {"route"}).value()->Get("api");
  // Latencies spread over the default buckets, so the bucket search is not always one step.
  constexpr std::array<double, 8> kValues = {0.0003, 0.0012, 0.004, 0.008, 0.02, 0.07, 0.3, 3.0};
  const auto slot = static_cast<std::size_t>(state.thread_index());
  std::size_t i = 0;
  for (auto _ : state) histogram.Observe(slot, kValues[i++ & 7]);
  benchmark::DoNotOptimize(histogram.Value().count);
}
BENCHMARK(BM_HistogramObserve)->Threads(1)->Threads(2);

AccessLogEntry RealisticEntry() {
  AccessLogEntry e;
  e.time = std::chrono::system_clock::now();
  e.method = "POST";
  e.path = "/api/v1/orders/12345/items?expand=product&page=2";
  e.status = 201;
  e.bytes_received = 512;
  e.bytes_sent = 2048;
  e.duration = std::chrono::microseconds(4321);
  e.upstream = "10.12.3.45:8080";
  e.request_id = "7f3c2a9e-4b1d-4c8e-9a2f-1e5d6c7b8a90";
  e.listener = "public";
  e.route = "orders";
  e.client = "203.0.113.9:53122";
  return e;
}

void BM_AccessLogLine(benchmark::State& state) {
  const AccessLogEntry entry = RealisticEntry();
  std::string buffer;
  buffer.reserve(1024);
  for (auto _ : state) {
    buffer.clear();
    AppendAccessLogLine(entry, buffer);
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * buffer.size()));
}
BENCHMARK(BM_AccessLogLine);

// The same line through Boost.JSON (without the time formatting), to show what the hand writer
// saves.
void BM_AccessLogLineBoostJson(benchmark::State& state) {
  const AccessLogEntry entry = RealisticEntry();
  std::string time;
  AppendRfc3339(entry.time, 3, time);
  for (auto _ : state) {
    boost::json::object o;
    o["time"] = time;
    o["method"] = entry.method;
    o["path"] = entry.path;
    o["status"] = entry.status;
    o["bytes_received"] = entry.bytes_received;
    o["bytes_sent"] = entry.bytes_sent;
    o["duration"] = std::chrono::duration<double>(entry.duration).count();
    o["upstream"] = entry.upstream;
    o["request_id"] = entry.request_id;
    o["listener"] = entry.listener;
    o["route"] = entry.route;
    o["client"] = entry.client;
    std::string line = boost::json::serialize(o);
    line += '\n';
    benchmark::DoNotOptimize(line.data());
  }
}
BENCHMARK(BM_AccessLogLineBoostJson);

// The admin side, for scale: 4 workers, 50 routes with a counter and a latency histogram each.
void BM_RenderPrometheus(benchmark::State& state) {
  MetricsRegistry registry(4);
  auto* requests = registry.AddCounter("ferry_requests_total", "r", {"route", "code"}).value();
  auto* latency = registry.AddHistogram("ferry_latency_seconds", "l", {"route"}).value();
  for (int r = 0; r < 50; ++r) {
    const std::string route = "route_" + std::to_string(r);
    requests->Get(route, "200").Add(0, 100);
    latency->Get(route).Observe(1, 0.01);
  }
  for (auto _ : state) benchmark::DoNotOptimize(registry.RenderPrometheus());
}
BENCHMARK(BM_RenderPrometheus);

}  // namespace
}  // namespace ferry::observability
