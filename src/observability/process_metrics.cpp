#include "observability/process_metrics.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>

namespace ferry::observability {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Reads a small /proc file whole. /proc files report size 0, so read until EOF.
std::optional<std::string> ReadProcFile(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  if (text.empty()) return std::nullopt;
  return text;
}

std::optional<double> ReadStatmField(int index) {
  const auto text = ReadProcFile("/proc/self/statm");
  if (!text) return std::nullopt;
  unsigned long long pages[2] = {0, 0};
  if (std::sscanf(text->c_str(), "%llu %llu", &pages[0], &pages[1]) != 2) return std::nullopt;
  return static_cast<double>(pages[index]) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double OrNaN(std::optional<double> v) { return v.value_or(kNaN); }

}  // namespace

std::optional<double> ReadResidentMemoryBytes() { return ReadStatmField(1); }

std::optional<double> ReadOpenFds() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return std::nullopt;
  double count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;  // the directory stream's own descriptor
}

std::optional<double> ReadStartTimeSeconds() {
  // Field 22 of /proc/self/stat is the start time in clock ticks since boot. Field 2 (comm) is
  // in parentheses and may contain spaces, so parse from the last ')'.
  const auto stat = ReadProcFile("/proc/self/stat");
  const auto system_stat = ReadProcFile("/proc/stat");
  if (!stat || !system_stat) return std::nullopt;
  const auto paren = stat->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  unsigned long long start_ticks = 0;
  // After ") " come fields 3..; skip 19 of them (3..21) to reach 22.
  if (std::sscanf(stat->c_str() + paren + 1,
                  " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d "
                  "%llu",
                  &start_ticks) != 1) {
    return std::nullopt;
  }
  const auto btime_pos = system_stat->find("\nbtime ");
  if (btime_pos == std::string::npos) return std::nullopt;
  unsigned long long boot_time = 0;
  if (std::sscanf(system_stat->c_str() + btime_pos, "\nbtime %llu", &boot_time) != 1) {
    return std::nullopt;
  }
  return static_cast<double>(boot_time) +
         static_cast<double>(start_ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

Result<void> RegisterProcessMetrics(MetricsRegistry& registry) {
  // The start time never changes: read it once.
  const double start_time = OrNaN(ReadStartTimeSeconds());
  const struct {
    const char* name;
    const char* help;
    bool counter;
    std::function<double()> callback;
  } metrics[] = {
      {"process_resident_memory_bytes", "Resident memory size in bytes.", false,
       [] { return OrNaN(ReadResidentMemoryBytes()); }},
      {"process_virtual_memory_bytes", "Virtual memory size in bytes.", false,
       [] { return OrNaN(ReadStatmField(0)); }},
      {"process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
       false, [start_time] { return start_time; }},
      {"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", true,
       [] {
         rusage usage{};
         if (::getrusage(RUSAGE_SELF, &usage) != 0) return kNaN;
         const auto seconds = [](const timeval& tv) {
           return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
         };
         return seconds(usage.ru_utime) + seconds(usage.ru_stime);
       }},
      {"process_open_fds", "Number of open file descriptors.", false,
       [] { return OrNaN(ReadOpenFds()); }},
      {"process_max_fds", "Maximum number of open file descriptors.", false,
       [] {
         rlimit limit{};
         if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return kNaN;
         return static_cast<double>(limit.rlim_cur);
       }},
  };
  for (const auto& m : metrics) {
    auto added = m.counter ? registry.AddCallbackCounter(m.name, m.help, m.callback)
                           : registry.AddCallbackGauge(m.name, m.help, m.callback);
    if (!added) return added;
  }
  return Ok();
}

}  // namespace ferry::observability
