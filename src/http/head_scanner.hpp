// Finds the end of a message head and checks its raw bytes before llhttp sees them.
// Debian's llhttp 8.1.0 predates the fixes for CVE-2023-30589 (a bare CR taken as a line end)
// and CVE-2024-27982 (a header line starting with whitespace), so Ferry refuses those bytes
// itself: bare CR, bare LF, obsolete line folding, control characters, and heads over the limits.
// One empty line before the start line is skipped, as RFC 9112 2.2 asks (a second is refused).
// Thread safety: a value type; one per connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ferry::http {

struct HeadLimits {
  std::size_t max_bytes = 64 * 1024;  // request/status line plus header fields
  std::uint32_t max_fields = 100;     // header fields
};

class HeadScanner {
 public:
  enum class State {
    kIncomplete,     // need more bytes
    kComplete,       // head_size() bytes form a head that passed the checks
    kTooLarge,       // over max_bytes (431 for requests)
    kTooManyFields,  // over max_fields (431 for requests)
    kMalformed,      // forbidden bytes; error() says which (400)
  };

  explicit HeadScanner(HeadLimits limits) : limits_(limits) {}

  // Scans `data`, which holds the head from its first byte (and maybe more). Bytes already
  // scanned in an earlier call are not scanned again, so a slow client costs O(n) in total.
  State Scan(std::string_view data);
  // The head's size, counted from data's first byte: a skipped empty line is part of it.
  std::size_t head_size() const { return head_size_; }
  // The head has a tab somewhere (found for free: tabs take the scanner's slow path). The
  // parser needs to know: see Parser::HeadHasTabs.
  bool tabs() const { return tabs_; }
  const char* error() const { return error_; }
  void Reset() { *this = HeadScanner(limits_); }

 private:
  State Malformed(const char* why) {
    error_ = why;
    return State::kMalformed;
  }
  HeadLimits limits_;
  std::size_t scanned_ = 0;     // bytes of data already checked
  std::size_t line_start_ = 0;  // offset of the line being scanned
  std::size_t first_line_ = 0;  // offset of the start line: 2 after a skipped empty line
  std::uint32_t fields_ = 0;
  std::size_t head_size_ = 0;
  const char* error_ = "";
  bool tabs_ = false;
};

}  // namespace ferry::http
