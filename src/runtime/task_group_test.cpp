#include "runtime/task_group.hpp"

#include <gtest/gtest.h>

namespace ferry::runtime {
namespace {

using namespace std::chrono_literals;

Task<void> Sleep(asio::io_context& io, std::chrono::milliseconds d, int* done, error_code* seen) {
  asio::steady_timer timer(io, d);
  auto [ec] = co_await timer.async_wait(kNoThrow);
  *seen = ec;
  // A cancelled task goes on with error codes: a second wait is not thrown out of.
  asio::steady_timer again(io, 1ms);
  co_await again.async_wait(kNoThrow);
  ++*done;
}

Task<void> WaitFor(TaskGroup& group, bool* waited) {
  co_await group.Wait();
  *waited = true;
}

TEST(TaskGroup, WaitCompletesWhenEveryTaskHasEnded) {
  asio::io_context io;
  TaskGroup group(io.get_executor());
  int done = 0;
  error_code seen1, seen2;
  group.Spawn(Sleep(io, 5ms, &done, &seen1));
  group.Spawn(Sleep(io, 20ms, &done, &seen2));
  EXPECT_EQ(group.size(), 2u);
  bool waited = false;
  asio::co_spawn(io, WaitFor(group, &waited), asio::detached);
  io.run();
  EXPECT_TRUE(waited);
  EXPECT_EQ(done, 2);
  EXPECT_FALSE(seen1);
  EXPECT_EQ(group.size(), 0u);
}

TEST(TaskGroup, WaitWithNoTaskCompletesAtOnce) {
  asio::io_context io;
  TaskGroup group(io.get_executor());
  bool waited = false;
  asio::co_spawn(io, WaitFor(group, &waited), asio::detached);
  io.run();
  EXPECT_TRUE(waited);
}

TEST(TaskGroup, CancelAllEndsTheOperationEachTaskWaitsOn) {
  asio::io_context io;
  TaskGroup group(io.get_executor());
  int done = 0;
  error_code seen1, seen2;
  group.Spawn(Sleep(io, 10s, &done, &seen1));
  group.Spawn(Sleep(io, 10s, &done, &seen2));
  bool waited = false;
  asio::co_spawn(io, WaitFor(group, &waited), asio::detached);
  io.run_for(5ms);
  group.CancelAll();
  const auto start = std::chrono::steady_clock::now();
  io.restart();
  io.run();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  EXPECT_TRUE(waited);
  EXPECT_EQ(done, 2);
  EXPECT_EQ(seen1, asio::error::operation_aborted);
  EXPECT_EQ(seen2, asio::error::operation_aborted);
}

}  // namespace
}  // namespace ferry::runtime
