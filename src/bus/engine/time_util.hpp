// Conversions between BusTime and the microseconds since the epoch the logs store.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "bus/message.hpp"

namespace ferry::bus {

inline std::int64_t ToMicros(BusTime t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// Saturates at BusTime's range (about ±292 years around 1970 in nanoseconds): the value comes
// from disk, where a damaged record must not overflow (undefined behaviour) on the way in.
inline BusTime FromMicros(std::int64_t us) {
  using Micros = std::chrono::microseconds;
  constexpr std::int64_t kMax =
      std::chrono::duration_cast<Micros>(BusTime::duration::max()).count();
  constexpr std::int64_t kMin =
      std::chrono::duration_cast<Micros>(BusTime::duration::min()).count();
  const Micros clamped(std::clamp(us, kMin, kMax));
  return BusTime(std::chrono::duration_cast<BusTime::duration>(clamped));
}

}  // namespace ferry::bus
