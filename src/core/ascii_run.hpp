// Skipping plain ASCII in bulk: text checks and escapers step with it to the next byte that
// needs a closer look (a control character, a non-ASCII byte, or one of their own). Pure
// function; thread-safe.
#pragma once

#include <cstddef>
#include <string_view>

namespace ferry {

// The end of the run of bytes of `s` from `i` that are printable ASCII or DEL (0x20 to 0x7f)
// and neither `stop1` nor `stop2`: the first byte that is not, or s.size(). 16 bytes at a time
// with SSE2.
std::size_t AsciiRunEnd(std::string_view s, std::size_t i, char stop1 = '\0', char stop2 = '\0');

}  // namespace ferry
