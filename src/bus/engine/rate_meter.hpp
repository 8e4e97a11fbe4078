// Per-second rates of a few monotonic counters over the last minute, for the stats API (as
// RabbitMQ's management API shows message_stats rates). The counters stay the owner's plain
// integers, so counting costs nothing more: Sample() copies their values into a ring, at most
// once per kInterval (the bus thread calls it about once a second), and Rates() divides what
// each counter gained since the oldest sample within kWindow by the time since that sample.
// So a burst shows at once, averaged over the minute (or over the time since the meter started,
// at least 1 s, so a counter just opened does not show ten messages as thousands per second),
// and a counter that stops shows 0 once its last change is a window old.
// Threading: none; the owner's (the bus thread). No allocation after construction.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "bus/message.hpp"

namespace ferry::bus {

template <std::size_t N>
class RateMeter {
 public:
  using Counts = std::array<std::uint64_t, N>;
  using Rates = std::array<double, N>;

  static constexpr BusDuration kWindow = std::chrono::seconds(60);
  static constexpr BusDuration kInterval = std::chrono::seconds(5);
  // One sample more than the window holds, so its oldest end is always covered.
  static constexpr std::size_t kSlots = kWindow / kInterval + 1;

  // The meter starts at `counts` as of `now`: rates count from there.
  RateMeter(BusTime now, const Counts& counts) { Restart(now, counts); }

  // Keeps `counts` as of `now` if kInterval passed since the last sample. A clock that went
  // back starts the meter again (wall clock: rates over a jump would mean nothing).
  void Sample(BusTime now, const Counts& counts) {
    const Slot& newest = slots_[(first_ + size_ - 1) % kSlots];
    if (now < newest.at) return Restart(now, counts);
    if (now - newest.at < kInterval) return;
    if (size_ < kSlots) {
      slots_[(first_ + size_) % kSlots] = {now, counts};
      ++size_;
    } else {
      slots_[first_] = {now, counts};
      first_ = (first_ + 1) % kSlots;
    }
  }

  // Per second, from the oldest sample at most kWindow before `now` to `counts` (the counters'
  // values now); from the newest sample if none is that recent (Sample not called lately).
  Rates PerSecond(BusTime now, const Counts& counts) const {
    const Slot* base = &slots_[(first_ + size_ - 1) % kSlots];
    for (std::size_t i = 0; i < size_; ++i) {
      const Slot& s = slots_[(first_ + i) % kSlots];
      if (now - s.at <= kWindow) {
        base = &s;
        break;
      }
    }
    const double seconds = std::max(1.0, std::chrono::duration<double>(now - base->at).count());
    Rates out{};
    for (std::size_t i = 0; i < N; ++i) {
      // A counter never goes down; a smaller value would be a bug, not a negative rate.
      if (counts[i] > base->counts[i]) {
        out[i] = static_cast<double>(counts[i] - base->counts[i]) / seconds;
      }
    }
    return out;
  }

 private:
  struct Slot {
    BusTime at{};
    Counts counts{};
  };

  void Restart(BusTime now, const Counts& counts) {
    slots_[0] = {now, counts};
    first_ = 0;
    size_ = 1;
  }

  std::array<Slot, kSlots> slots_{};
  std::size_t first_ = 0;  // oldest sample
  std::size_t size_ = 0;   // samples held, 1..kSlots
};

}  // namespace ferry::bus
