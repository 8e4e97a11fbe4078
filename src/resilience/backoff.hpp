// The wait before a retry: exponential backoff with full jitter (a wait is uniform in
// [0, min(max, initial * multiplier^(retry-1))]), and the upstream's Retry-After on a 429 or 503.
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"

namespace ferry::resilience {

// The wait before retry number `retry` (1 = the first retry); `unit` is uniform in [0, 1).
Duration BackoffDelay(const config::RetryBackoff& backoff, std::uint32_t retry, double unit);

// A Retry-After value in delta-seconds ("3"); nullopt for anything else (an HTTP-date is not
// honoured: the backoff applies). Capped at one hour.
std::optional<Duration> ParseRetryAfter(std::string_view value);

}  // namespace ferry::resilience
