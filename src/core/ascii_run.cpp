#include "core/ascii_run.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace ferry {

std::size_t AsciiRunEnd(std::string_view s, std::size_t i, char stop1, char stop2) {
#if defined(__SSE2__)
  const __m128i space = _mm_set1_epi8(0x20);
  const __m128i s1 = _mm_set1_epi8(stop1);
  const __m128i s2 = _mm_set1_epi8(stop2);
  for (; i + 16 <= s.size(); i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s.data() + i));
    // Signed: bytes from 0x80 up are negative, so "less than a space" takes them in too.
    const __m128i stop = _mm_or_si128(_mm_cmplt_epi8(v, space),
                                      _mm_or_si128(_mm_cmpeq_epi8(v, s1), _mm_cmpeq_epi8(v, s2)));
    if (const int mask = _mm_movemask_epi8(stop); mask != 0) {
      return i + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(mask)));
    }
  }
#endif
  for (; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x80 || s[i] == stop1 || s[i] == stop2) break;
  }
  return i;
}

}  // namespace ferry
