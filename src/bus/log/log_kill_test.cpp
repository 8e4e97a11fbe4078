// kill -9 on the real disk: a child process appends and reports each acknowledged sequence
// through a pipe; the parent SIGKILLs it mid-stream, reopens the log and checks that every
// acknowledged record is there, once, with continuous sequences. (kill -9 keeps the page
// cache, so this cannot catch a missing fsync; log_crash_test.cpp does that.)
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <random>

#include "bus/log/log.hpp"
#include "bus/log/log_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::Payload;
using testing::SmallLog;
using testing::TempDir;

// The child: appends Payload(first + i) forever, writing each acknowledged sequence and
// payload index to `fd`. Never returns.
[[noreturn]] void AppendForever(const LogOptions& options, std::uint64_t first, int fd) {
  auto log = Log::Open(PosixFileSystem::Default(), options);
  if (!log) ::_exit(2);
  for (std::uint64_t i = first;; ++i) {
    auto seq = (*log)->Append(Payload(i));
    if (!seq) ::_exit(3);
    if (options.durability == Durability::kBatch && !(*log)->WaitDurable(*seq)) ::_exit(4);
    const std::uint64_t message[2] = {*seq, i};
    if (::write(fd, message, sizeof(message)) != sizeof(message)) ::_exit(5);
  }
}

class LogKillTest : public ::testing::TestWithParam<Durability> {};

TEST_P(LogKillTest, AcknowledgedRecordsSurviveKill9) {
  TempDir dir;
  const LogOptions options = SmallLog(dir.path(), GetParam());
  std::map<std::uint64_t, std::uint64_t> acked;  // sequence -> payload index
  std::mt19937_64 rng(9);
  std::uint64_t next_index = 0;
  for (int round = 0; round < 5; ++round) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const std::uint64_t first = next_index;
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      AppendForever(options, first, fds[1]);
    }
    ::close(fds[1]);
    const int wanted = 20 + static_cast<int>(rng() % 60);
    for (int n = 0; n < wanted; ++n) {
      std::uint64_t message[2];
      ASSERT_EQ(::read(fds[0], message, sizeof(message)), static_cast<ssize_t>(sizeof(message)));
      acked[message[0]] = message[1];
      next_index = std::max(next_index, message[1] + 1);
    }
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
    // Drain what the child acknowledged before the signal landed.
    std::uint64_t message[2];
    while (::read(fds[0], message, sizeof(message)) == static_cast<ssize_t>(sizeof(message))) {
      acked[message[0]] = message[1];
      next_index = std::max(next_index, message[1] + 1);
    }
    ::close(fds[0]);
    next_index += 1000;  // records written but never reported get indexes below this

    auto log = Log::Open(PosixFileSystem::Default(), options);
    ASSERT_TRUE(log.has_value());
    const auto records = testing::ReadAll(**log);
    ASSERT_FALSE(records.empty());
    std::map<std::string, int> seen;
    for (std::size_t i = 0; i < records.size(); ++i) {
      ASSERT_EQ(records[i].sequence, records[0].sequence + i) << "gap in round " << round;
      ASSERT_EQ(++seen[records[i].payload], 1) << "duplicate " << records[i].payload;
    }
    for (const auto& [sequence, index] : acked) {
      ASSERT_LE(sequence, records.back().sequence) << "acknowledged " << sequence << " lost";
      EXPECT_EQ(records[sequence - records[0].sequence].payload, Payload(index));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, LogKillTest,
                         ::testing::Values(Durability::kBatch, Durability::kInterval),
                         [](const auto& info) {
                           return info.param == Durability::kBatch ? "Batch" : "Interval";
                         });

}  // namespace
}  // namespace ferry::bus
