#include "http/head_scanner.hpp"

#include <algorithm>
#include <array>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ferry::http {

namespace {

// Bytes that need a closer look: CR, LF, SP and HT (at a line start they are obsolete folding),
// and every other control character. The rest (visible ASCII, obs-text) is skipped in bulk.
constexpr std::array<bool, 256> kSpecial = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<std::size_t>(c)] = true;
  t[0x7f] = true;
  t[' '] = true;
  return t;
}();

// The first byte of data[i, end) that kSpecial marks, or end: 16 bytes at a time with SSE2.
std::size_t SkipOrdinary(std::string_view data, std::size_t i, std::size_t end) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i del = _mm_set1_epi8(0x7f);
  for (; i + 16 <= end; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(data.data() + i));
    const __m128i up_to_space = _mm_cmpeq_epi8(_mm_min_epu8(v, space), v);  // unsigned <= 0x20
    const int mask = _mm_movemask_epi8(_mm_or_si128(up_to_space, _mm_cmpeq_epi8(v, del)));
    if (mask != 0) return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
  }
#endif
  while (i < end && !kSpecial[static_cast<unsigned char>(data[i])]) ++i;
  return i;
}

}  // namespace

HeadScanner::State HeadScanner::Scan(std::string_view data) {
  // RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request line (old
  // clients send one after a POST body). One is skipped; more is a broken or probing client.
  const std::size_t end = std::min(data.size(), limits_.max_bytes + 1);
  for (std::size_t i = scanned_; i < end; ++i) {
    // Fast path: ordinary header bytes need no check but the limit, applied through `end`.
    i = SkipOrdinary(data, i, end);
    if (i == end) break;
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (i >= limits_.max_bytes) return State::kTooLarge;
    if (c == '\r') {
      if (i + 1 >= data.size()) {
        scanned_ = i;  // decide once the next byte arrives
        return State::kIncomplete;
      }
      if (data[i + 1] != '\n') return Malformed("bare CR in message head");
      continue;
    }
    if (c == '\n') {
      if (i == 0 || data[i - 1] != '\r') return Malformed("bare LF in message head");
      const std::size_t line_len = i - 1 - line_start_;
      if (line_len == 0) {
        if (line_start_ == first_line_) {
          if (first_line_ != 0) return Malformed("more than one empty line before the start line");
          first_line_ = line_start_ = i + 1;
          continue;
        }
        head_size_ = i + 1;
        scanned_ = head_size_;
        return State::kComplete;
      }
      if (line_start_ != first_line_ && ++fields_ > limits_.max_fields) {
        return State::kTooManyFields;
      }
      line_start_ = i + 1;
      continue;
    }
    if (i == line_start_ && line_start_ != first_line_ && (c == ' ' || c == '\t')) {
      return Malformed("obsolete line folding or whitespace before a header name");
    }
    if (c == '\t') {
      tabs_ = true;
      continue;
    }
    if (c < 0x20 || c == 0x7f) return Malformed("control character in message head");
  }
  if (data.size() > limits_.max_bytes) return State::kTooLarge;
  scanned_ = data.size();
  return State::kIncomplete;
}

}  // namespace ferry::http
