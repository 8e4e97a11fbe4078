// Checks the Prometheus text against the reference linter, promtool (Debian package
// prometheus). Without promtool the test fails under CI=true and is skipped, loudly, elsewhere.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "observability/access_log.hpp"
#include "observability/metrics_registry.hpp"
#include "observability/process_metrics.hpp"

namespace ferry::observability {
namespace {

bool PromtoolInstalled() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

bool RunningInCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string(ci) == "true";
}

// Runs a shell command; returns its exit status and fills `output` with stdout and stderr.
int RunCommand(const std::string& command, std::string& output) {
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr) output += buf;
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void FillRealisticRegistry(MetricsRegistry& registry) {
  auto* requests = registry
                       .AddCounter("ferry_http_requests_total", "HTTP requests served.",
                                   {"listener", "route", "code"})
                       .value();
  requests->Get("public", "api", "200").Add(0, 1200);
  requests->Get("public", "api", "503").Add(1, 3);
  requests->Get("public", "we\"ird\\route\nname", "404").Add(registry.main_slot(), 1);
  auto* bytes =
      registry.AddCounter("ferry_http_response_bytes_total", "Response body bytes sent.", {"route"})
          .value();
  bytes->Get("api").Add(0, 1u << 30);
  auto* connections =
      registry
          .AddGauge("ferry_downstream_connections", "Open downstream connections.", {"listener"})
          .value();
  connections->Get("public").Add(0, 12);
  connections->Get("public").Sub(1, 2);
  auto* latency = registry
                      .AddHistogram("ferry_http_request_duration_seconds",
                                    "Time from request start to response end.", {"route"})
                      .value();
  for (double v : {0.0003, 0.002, 0.04, 0.7, 30.0}) latency->Get("api").Observe(0, v);
  auto* sizes = registry
                    .AddHistogram("ferry_http_request_size_bytes", "Request body sizes.", {},
                                  {1024, 16384, 1048576})
                    .value();
  sizes->Get().Observe(1, 500);
  ASSERT_TRUE(RegisterProcessMetrics(registry));
  ASSERT_TRUE(AccessLogSink::Open("stdout", registry));
}

TEST(PromtoolTest, CheckMetricsAcceptsARealisticRegistry) {
  if (!PromtoolInstalled()) {
    if (RunningInCi()) FAIL() << "promtool is not installed; CI must have it (package prometheus)";
    std::fprintf(stderr,
                 "\n*** SKIPPED: promtool not found on PATH; the Prometheus text was NOT checked. "
                 "Install the Debian package 'prometheus'. ***\n\n");
    GTEST_SKIP() << "promtool not installed";
  }
  MetricsRegistry registry(2);
  FillRealisticRegistry(registry);
  const std::string text = registry.RenderPrometheus();

  char dir_template[] = "/tmp/ferry_promtool_XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/metrics.txt";
  std::ofstream(path) << text;

  std::string output;
  const int status = RunCommand("promtool check metrics < " + path, output);
  EXPECT_EQ(status, 0) << "promtool said:\n" << output << "\nfor:\n" << text;
  ::unlink(path.c_str());
  ::rmdir(dir_template);
}

}  // namespace
}  // namespace ferry::observability
