#include "core/units.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>

namespace ferry {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Reads a non-negative decimal number (digits with an optional fraction) at the front of text.
bool TakeNumber(std::string_view& text, double& out) {
  std::size_t i = 0;
  while (i < text.size() && (IsDigit(text[i]) || text[i] == '.')) ++i;
  if (i == 0) return false;
  std::string_view num = text.substr(0, i);
  auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), out);
  if (ec != std::errc() || ptr != num.data() + num.size()) return false;
  text.remove_prefix(i);
  return true;
}

}  // namespace

Result<Duration> ParseDuration(std::string_view text) {
  const std::string_view original = text;
  auto bad = [&] {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid duration '{}': expected a number with a unit, like 250ms, 2s, 1m30s",
                    original));
  };
  if (text == "0") return Duration::zero();
  if (text.empty()) return bad();
  long double total_ns = 0;
  while (!text.empty()) {
    double value = 0;
    if (!TakeNumber(text, value)) return bad();
    std::size_t u = 0;
    while (u < text.size() && !IsDigit(text[u]) && text[u] != '.') ++u;
    std::string_view unit = text.substr(0, u);
    text.remove_prefix(u);
    long double scale;
    if (unit == "ns")
      scale = 1;
    else if (unit == "us")
      scale = 1e3;
    else if (unit == "ms")
      scale = 1e6;
    else if (unit == "s")
      scale = 1e9;
    else if (unit == "m")
      scale = 60e9;
    else if (unit == "h")
      scale = 3600e9;
    else
      return bad();
    total_ns += value * scale;
  }
  if (total_ns > 1e18L) return bad();
  return Duration(static_cast<std::int64_t>(std::llround(static_cast<double>(total_ns))));
}

Result<std::uint64_t> ParseSize(std::string_view text) {
  const std::string_view original = text;
  double value = 0;
  if (!TakeNumber(text, value)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("invalid size '{}': expected a number with a unit, like 64KiB, 1MiB",
                            original));
  }
  double scale;
  if (text.empty() || text == "B")
    scale = 1;
  else if (text == "KB")
    scale = 1e3;
  else if (text == "MB")
    scale = 1e6;
  else if (text == "GB")
    scale = 1e9;
  else if (text == "KiB")
    scale = 1024.0;
  else if (text == "MiB")
    scale = 1024.0 * 1024;
  else if (text == "GiB")
    scale = 1024.0 * 1024 * 1024;
  else if (text == "TiB")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid size '{}': unknown unit '{}' (use B, KB, MB, GB, KiB, MiB, GiB)",
                    original, text));
  }
  return static_cast<std::uint64_t>(std::llround(value * scale));
}

Result<double> ParseRatio(std::string_view text) {
  const std::string_view original = text;
  double value = 0;
  bool percent = !text.empty() && text.back() == '%';
  if (percent) text.remove_suffix(1);
  if (!TakeNumber(text, value) || !text.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("invalid ratio '{}': expected a percentage like 20%", original));
  }
  if (percent) value /= 100.0;
  if (value < 0 || value > 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("invalid ratio '{}': must be between 0% and 100%", original));
  }
  return value;
}

std::string FormatDuration(Duration d) {
  const auto ns = d.count();
  if (ns == 0) return "0s";
  if (ns % 3'600'000'000'000 == 0) return fmt::format("{}h", ns / 3'600'000'000'000);
  if (ns % 60'000'000'000 == 0) return fmt::format("{}m", ns / 60'000'000'000);
  if (ns % 1'000'000'000 == 0) return fmt::format("{}s", ns / 1'000'000'000);
  if (ns % 1'000'000 == 0) return fmt::format("{}ms", ns / 1'000'000);
  if (ns % 1'000 == 0) return fmt::format("{}us", ns / 1'000);
  return fmt::format("{}ns", ns);
}

}  // namespace ferry
