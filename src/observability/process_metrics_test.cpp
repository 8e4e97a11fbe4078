#include "observability/process_metrics.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <ctime>

namespace ferry::observability {
namespace {

TEST(ProcessMetricsTest, ResidentMemoryIsPositive) {
  const auto rss = ReadResidentMemoryBytes();
  ASSERT_TRUE(rss.has_value());
  EXPECT_GT(*rss, 0);
}

TEST(ProcessMetricsTest, OpenFdsCountsANewDescriptor) {
  const auto before = ReadOpenFds();
  const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  const auto after = ReadOpenFds();
  ::close(fd);
  ASSERT_TRUE(before && after);
  EXPECT_EQ(*after, *before + 1);
}

TEST(ProcessMetricsTest, StartTimeIsInThePastButRecent) {
  const auto start = ReadStartTimeSeconds();
  ASSERT_TRUE(start.has_value());
  const double now = static_cast<double>(std::time(nullptr));
  EXPECT_LE(*start, now + 1);
  EXPECT_GT(*start, now - 3600);
}

TEST(ProcessMetricsTest, RegistersTheStandardNames) {
  MetricsRegistry registry(1);
  ASSERT_TRUE(RegisterProcessMetrics(registry));
  const std::string text = registry.RenderPrometheus();
  for (const char* name : {"process_resident_memory_bytes", "process_start_time_seconds",
                           "process_open_fds", "process_cpu_seconds_total"}) {
    EXPECT_NE(text.find(std::string("\n") + name + " "), std::string::npos) << name;
  }
}

}  // namespace
}  // namespace ferry::observability
