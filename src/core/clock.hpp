// Where Ferry reads the time: a small interface so tests can fake it. The real clock is
// SystemClock(); FakeClock only moves when told to.
// Thread safety: SystemClock() is safe from any thread; a FakeClock belongs to one test thread.
#pragma once

#include <chrono>

namespace ferry {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic time, for durations and deadlines.
  virtual std::chrono::steady_clock::time_point now() const = 0;
  // Calendar time, for logs.
  virtual std::chrono::system_clock::time_point wall() const = 0;
};

// The process's clocks (steady_clock and system_clock); lives for the whole process.
const Clock& SystemClock();

// Starts at a fixed point and moves only by Advance(), both of its times together.
class FakeClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return now_; }
  std::chrono::system_clock::time_point wall() const override { return wall_; }
  void Advance(std::chrono::nanoseconds d) {
    now_ += d;
    wall_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1)};
  std::chrono::system_clock::time_point wall_{std::chrono::seconds(1'800'000'000)};
};

}  // namespace ferry
