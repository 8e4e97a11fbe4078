// Which old records a queue's or topic's retention deletes: a plain value, shared by the broker's
// options (bus/broker_options.hpp) and the embedded log that applies it (log/retention.cpp).
#pragma once

#include <chrono>
#include <cstdint>

namespace ferry::bus {

// Which whole segments EnforceRetention deletes, oldest first. The active (last) segment is
// never deleted.
struct RetentionPolicy {
  // A segment whose newest record is older than this goes, even if it holds records at or past
  // the protected sequence (each such record is counted). Zero (the default) means no age limit.
  std::chrono::microseconds max_age{0};
  // Oldest segments go while the log is over this many bytes, but only segments entirely below
  // the protected sequence. Zero (the default) means no size limit.
  std::uint64_t max_bytes = 0;
  // Segments wholly below the protected sequence (every record consumed) go as well, whatever
  // their age or the log's size: what a queue wants ("keep until consumed").
  bool delete_consumed = false;
};

}  // namespace ferry::bus
