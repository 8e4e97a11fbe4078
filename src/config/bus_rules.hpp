// The rules the bus's names, CloudEvents URIs and options follow, in one place for the config
// loader (bus_loader.cpp, the `bus:` block) and the bus API (src/bus/api: names in paths, the
// subscription PUT body), so the two cannot drift apart: each check is made here, and its
// problem worded here; the callers only say where (a YAML path, or a JSON key).
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/units.hpp"

namespace ferry::config {

// A queue, topic or subscription name: [A-Za-z0-9][A-Za-z0-9._-]{0,127}. Names become
// directory names under data_dir and metrics labels; the leading letter or digit keeps out "."
// and "..".
bool IsBusName(std::string_view name);

// A non-empty RFC 3986 URI-reference, as CloudEvents' `source` must be: only the characters
// RFC 3986 allows, percent-escapes well formed, and a scheme (if a ':' comes before the first
// '/', '?' or '#') of a letter then letters, digits, '+', '-' or '.'.
bool IsUriReference(std::string_view text);
// An RFC 3986 URI with a scheme (an absolute URI, a fragment allowed), as `dataschema` must be.
bool IsAbsoluteUri(std::string_view text);

// --- Options of a queue or subscription (the config file and a subscription PUT).

// The least backoff.multiplier (1: a constant wait).
inline constexpr double kMinBusBackoffMultiplier = 1.0;

// What is wrong with a filter's value (type, source, subject), if anything: a '*' may only
// end it, where it makes a prefix match.
std::optional<std::string> BusFilterProblem(std::string_view pattern);
// What is wrong with a push's path, if anything: it must start with '/'.
std::optional<std::string> BusPushPathProblem(std::string_view path);
// A value of a rule below as its message shows it: how the caller names it ("max",
// "'backoff.max'"), the value, and where the value came from when the caller did not give it
// (", the default", ", as it runs now"; empty when given).
struct BusValueNote {
  std::string_view name;
  Duration value;
  std::string_view origin;
};
// What is wrong with a backoff, if anything: max must be at least initial.
std::optional<std::string> BusBackoffProblem(const BusValueNote& max, const BusValueNote& initial);
// What is wrong with a push's timeout against the lease, if anything: a push still waiting when
// its lease ends would be delivered again meanwhile, so the timeout must be less than the lease.
std::optional<std::string> BusPushTimeoutProblem(const BusValueNote& timeout,
                                                 const BusValueNote& lease);

}  // namespace ferry::config
