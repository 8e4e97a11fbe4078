#include "resilience/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace ferry::resilience {

Duration BackoffDelay(const config::RetryBackoff& backoff, std::uint32_t retry, double unit) {
  const double initial = std::chrono::duration<double>(backoff.initial).count();
  const double max = std::chrono::duration<double>(backoff.max).count();
  const double exponent = retry > 0 ? static_cast<double>(retry - 1) : 0.0;
  const double cap = std::min(max, initial * std::pow(std::max(1.0, backoff.multiplier), exponent));
  const double wait = std::clamp(unit, 0.0, 1.0) * std::max(0.0, cap);
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(wait));
}

std::optional<Duration> ParseRetryAfter(std::string_view value) {
  while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
  if (value.empty() || value.size() > 9) return std::nullopt;
  std::uint32_t seconds = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    seconds = seconds * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return std::chrono::seconds(std::min<std::uint32_t>(seconds, 3600));
}

}  // namespace ferry::resilience
