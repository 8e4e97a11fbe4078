// IoWatch on a NoticeBoard and a runtime::Deadline over an in-memory stream: the notice comes
// from the board's timer without ending the I/O, the deadline still ends it later, Abort ends it
// as a cancellation (not a timeout), a withdrawn or detached watch hears nothing.
#include "runtime/io_watch.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "runtime/deadline.hpp"
#include "runtime/notice_board.hpp"
#include "runtime/stream.hpp"

namespace ferry::runtime {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

struct CountingWatch final : IoWatch {
  void OnNotice() override {
    ++notices;
    at = SteadyClock::now();
  }
  int notices = 0;
  SteadyClock::time_point at{};
};

struct ReadResult {
  bool done = false;
  error_code ec;
  std::size_t bytes = 0;
  SteadyClock::time_point at{};
};

Task<void> ReadOnce(Stream& s, ReadResult* out) {
  char buf[64];
  auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
  out->ec = ec;
  out->bytes = n;
  out->done = true;
  out->at = SteadyClock::now();
}

// Runs `io` until `done` (or 2 s): a Deadline's pending timer would keep io.run() going.
template <typename Done>
void RunUntil(asio::io_context& io, Done done) {
  const auto until = SteadyClock::now() + 2s;
  while (!done() && SteadyClock::now() < until) {
    io.restart();
    io.run_for(2ms);
  }
}

Task<void> WriteAfter(asio::io_context& io, Stream& s, std::chrono::milliseconds d) {
  asio::steady_timer timer(io, d);
  co_await timer.async_wait(kNoThrow);
  co_await asio::async_write(s, asio::buffer(std::string_view("hi")), kNoThrow);
}

TEST(IoWatch, NoticeComesAtItsTimeAndTheReadGoesOn) {
  asio::io_context io;
  NoticeBoard board(io);
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  CountingWatch watch;  // outlives the deadline that watches it
  Deadline<Stream> deadline(io, *a);
  deadline.Arm(5s);
  const auto started = SteadyClock::now();
  watch.NoticeAt(started + 30ms);
  board.Post(watch);
  deadline.Watch(&watch);
  ReadResult read;
  asio::co_spawn(io, ReadOnce(*a, &read), asio::detached);
  asio::co_spawn(io, WriteAfter(io, *b, 120ms), asio::detached);
  RunUntil(io, [&] { return read.done; });
  EXPECT_EQ(watch.notices, 1);
  EXPECT_GE(watch.at - started, 30ms);
  EXPECT_LT(watch.at - started, 120ms);  // before the bytes came
  ASSERT_TRUE(read.done);
  EXPECT_FALSE(read.ec) << read.ec.message();
  EXPECT_EQ(read.bytes, 2u);
  EXPECT_FALSE(deadline.expired());
  EXPECT_EQ(watch.notice_due(), SteadyClock::time_point::max());  // given once
}

TEST(IoWatch, TheDeadlineStillEndsTheReadAfterTheNotice) {
  asio::io_context io;
  NoticeBoard board(io);
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  CountingWatch watch;  // outlives the deadline that watches it
  Deadline<Stream> deadline(io, *a);
  const auto started = SteadyClock::now();
  watch.NoticeAt(started + 20ms);
  board.Post(watch);
  deadline.Watch(&watch);
  deadline.Arm(80ms);
  ReadResult read;
  asio::co_spawn(io, ReadOnce(*a, &read), asio::detached);
  RunUntil(io, [&] { return read.done; });
  EXPECT_EQ(watch.notices, 1);
  ASSERT_TRUE(read.done);
  EXPECT_EQ(read.ec, asio::error::operation_aborted);
  EXPECT_TRUE(deadline.expired());
  EXPECT_GE(read.at - started, 80ms);
}

TEST(NoticeBoard, AWithdrawnOrDestroyedWatchHearsNothing) {
  asio::io_context io;
  NoticeBoard board(io);
  CountingWatch withdrawn;
  withdrawn.NoticeAt(SteadyClock::now() + 20ms);
  board.Post(withdrawn);
  {
    CountingWatch gone;
    gone.NoticeAt(SteadyClock::now() + 10ms);
    board.Post(gone);
  }  // unlinks itself: the board's wake-up at 10 ms finds only `withdrawn`, not yet due
  withdrawn.Withdraw();
  io.run_for(80ms);
  EXPECT_EQ(withdrawn.notices, 0);
}

TEST(NoticeBoard, EachWatchHearsOnceInTheOrderOfItsTime) {
  asio::io_context io;
  NoticeBoard board(io);
  const auto started = SteadyClock::now();
  CountingWatch late, early, middle;
  late.NoticeAt(started + 90ms);  // posted first: the timer then moves up for the others
  board.Post(late);
  early.NoticeAt(started + 20ms);
  board.Post(early);
  middle.NoticeAt(started + 50ms);
  board.Post(middle);
  RunUntil(io, [&] { return late.notices > 0; });
  io.restart();
  io.run_for(30ms);  // nothing more comes
  EXPECT_EQ(early.notices, 1);
  EXPECT_EQ(middle.notices, 1);
  EXPECT_EQ(late.notices, 1);
  EXPECT_GE(early.at - started, 20ms);
  EXPECT_GE(middle.at - started, 50ms);
  EXPECT_GE(late.at - started, 90ms);
  EXPECT_LT(early.at, middle.at);
  EXPECT_LT(middle.at, late.at);
}

TEST(NoticeBoard, ABoardDestroyedFirstLeavesItsWatchesUnlinked) {
  asio::io_context io;
  CountingWatch watch;
  {
    NoticeBoard board(io);
    watch.NoticeAt(SteadyClock::now() + 10ms);
    board.Post(watch);
  }
  io.run_for(40ms);  // the cancelled wait's handler runs and does nothing
  EXPECT_EQ(watch.notices, 0);
  watch.Withdraw();  // (a no-op now)
}

TEST(IoWatch, AbortEndsThePendingReadAsACancellation) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  CountingWatch watch;  // outlives the deadline that watches it
  Deadline<Stream> deadline(io, *a);
  deadline.Arm(5s);
  deadline.Watch(&watch);
  ReadResult read;
  asio::co_spawn(io, ReadOnce(*a, &read), asio::detached);
  asio::steady_timer timer(io, 20ms);
  timer.async_wait([&](const error_code&) { watch.Abort(); });
  RunUntil(io, [&] { return read.done; });
  ASSERT_TRUE(read.done);
  EXPECT_EQ(read.ec, asio::error::operation_aborted);
  EXPECT_FALSE(deadline.expired());  // not a timeout
  EXPECT_TRUE(watch.aborted());
  EXPECT_EQ(watch.notices, 0);
}

TEST(IoWatch, ADetachedWatchAbortsNothing) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  CountingWatch watch;
  ReadResult read;
  {
    Deadline<Stream> deadline(io, *a);
    deadline.Arm(5s);
    deadline.Watch(&watch);
    deadline.Watch(nullptr);
    asio::co_spawn(io, ReadOnce(*a, &read), asio::detached);
    io.run_for(20ms);
    watch.Abort();  // no socket attached: only the flag
    asio::co_spawn(io, WriteAfter(io, *b, 1ms), asio::detached);
    io.restart();
    io.run_for(100ms);
  }
  ASSERT_TRUE(read.done);
  EXPECT_FALSE(read.ec) << read.ec.message();
  EXPECT_TRUE(watch.aborted());
}

}  // namespace
}  // namespace ferry::runtime
