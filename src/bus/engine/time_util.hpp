// Conversions between BusTime and the microseconds since the epoch the logs store.
#pragma once

#include <chrono>
#include <cstdint>

#include "bus/engine/message.hpp"

namespace ferry::bus {

inline std::int64_t ToMicros(BusTime t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

inline BusTime FromMicros(std::int64_t us) {
  return BusTime(std::chrono::duration_cast<BusTime::duration>(std::chrono::microseconds(us)));
}

}  // namespace ferry::bus
