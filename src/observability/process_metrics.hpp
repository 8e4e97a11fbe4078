// The standard process_* metrics, read from /proc at scrape time: resident and virtual memory,
// start time, CPU seconds, open and maximum file descriptors. Linux only. Thread safety: the
// callbacks are safe to run on the admin thread while workers run. Errors: a /proc file that
// cannot be read makes its metric report NaN rather than failing the scrape.
#pragma once

#include <optional>

#include "core/result.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::observability {

// Registers process_resident_memory_bytes, process_virtual_memory_bytes,
// process_start_time_seconds, process_cpu_seconds_total, process_open_fds and process_max_fds.
// Call once, from the main thread; a second call fails with kAlreadyExists.
Result<void> RegisterProcessMetrics(MetricsRegistry& registry);

// Resident set size in bytes, from /proc/self/statm.
std::optional<double> ReadResidentMemoryBytes();
// Number of open file descriptors, from /proc/self/fd.
std::optional<double> ReadOpenFds();
// Process start time in seconds since the Unix epoch, from /proc/self/stat and /proc/stat.
std::optional<double> ReadStartTimeSeconds();

}  // namespace ferry::observability
