// Parsing of the config's human units: durations ("250ms", "2s", "1m30s"), sizes ("64KiB",
// "1MB", "512") and ratios ("20%"). Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/result.hpp"

namespace ferry {

using Duration = std::chrono::nanoseconds;

// Units: ns, us, ms, s, m, h; parts may be chained ("1m30s"). A bare "0" is zero.
Result<Duration> ParseDuration(std::string_view text);
// Units: B (or none), KB/MB/GB (1000s) and KiB/MiB/GiB (1024s).
Result<std::uint64_t> ParseSize(std::string_view text);
// "20%" -> 0.2; also a plain number in [0, 1].
Result<double> ParseRatio(std::string_view text);

// Renders a duration back in the config's units, for /config ("2s", "250ms").
std::string FormatDuration(Duration d);

}  // namespace ferry
