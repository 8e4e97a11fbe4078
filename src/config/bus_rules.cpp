#include "config/bus_rules.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace ferry::config {
namespace {

bool IsAlnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

// Where the scheme's ':' is, if the text starts with a scheme; npos if it does not.
std::size_t SchemeEnd(std::string_view s) {
  const std::size_t colon = s.find(':');
  if (colon == std::string_view::npos || colon > s.find_first_of("/?#")) {
    return std::string_view::npos;
  }
  return colon;
}

}  // namespace

bool IsBusName(std::string_view s) {
  if (s.empty() || s.size() > 128 || !IsAlnum(s.front())) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; });
}

bool IsUriReference(std::string_view s) {
  if (s.empty()) return false;
  static constexpr std::string_view kAllowed =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:/?#[]@!$&'()*+,;=";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size() || !std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        return false;
      }
      i += 2;
    } else if (kAllowed.find(s[i]) == std::string_view::npos) {
      return false;
    }
  }
  const std::size_t colon = SchemeEnd(s);
  if (colon == std::string_view::npos) return true;
  if (colon == 0 || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
  return std::all_of(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(colon),
                     [](char c) { return IsAlnum(c) || c == '+' || c == '-' || c == '.'; });
}

bool IsAbsoluteUri(std::string_view s) {
  return IsUriReference(s) && SchemeEnd(s) != std::string_view::npos;
}

std::optional<std::string> BusFilterProblem(std::string_view pattern) {
  if (pattern.find('*') < pattern.size() - 1) {
    return fmt::format("'*' is only allowed as the last character (a prefix match), got '{}'",
                       pattern);
  }
  return std::nullopt;
}

std::optional<std::string> BusPushPathProblem(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return fmt::format("must be a path starting with '/', got '{}'", path);
  }
  return std::nullopt;
}

std::optional<std::string> BusBackoffProblem(const BusValueNote& max, const BusValueNote& initial) {
  if (max.value >= initial.value) return std::nullopt;
  return fmt::format("{} ({}{}) must be at least {} ({}{})", max.name, FormatDuration(max.value),
                     max.origin, initial.name, FormatDuration(initial.value), initial.origin);
}

std::optional<std::string> BusPushTimeoutProblem(const BusValueNote& timeout,
                                                 const BusValueNote& lease) {
  if (timeout.value < lease.value) return std::nullopt;
  return fmt::format(
      "{} ({}{}) must be less than {} ({}{}): a delivery whose push outlasts its lease is "
      "delivered again meanwhile",
      timeout.name, FormatDuration(timeout.value), timeout.origin, lease.name,
      FormatDuration(lease.value), lease.origin);
}

}  // namespace ferry::config
