// Where the pieces of a JSON text lie, without converting anything: the bus keeps an event's
// `data` as the bytes its publisher sent, and Boost.JSON cannot (it turns every number into an
// int64, uint64 or double, so 12345678901234567890123 and 1e-400 would change).
// Strict RFC 8259 (UTF-8 checked, no trailing commas, nesting at most kMaxJsonDepth).
// Pure functions on untrusted bytes; thread-safe. Fuzzed by tests/fuzz/bus_json_span_fuzz.cpp.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::bus {

inline constexpr std::size_t kMaxJsonDepth = 256;

// One member of a JSON object.
struct JsonMember {
  std::string key;         // unescaped
  std::string_view value;  // the value's text exactly as sent, without whitespace around it
};

// True if `text` is exactly one JSON value, with optional whitespace around it.
bool IsJsonText(std::string_view text);

// The members of the JSON object `text` is, in order (duplicates kept); nullopt if `text` is not
// exactly one valid JSON object. `error` (optional) says where it went wrong.
std::optional<std::vector<JsonMember>> JsonObjectMembers(std::string_view text,
                                                         std::string* error = nullptr);
// The elements of the JSON array `text` is, as their texts; nullopt if it is not one.
std::optional<std::vector<std::string_view>> JsonArrayElements(std::string_view text,
                                                               std::string* error = nullptr);

// The value of a JSON string token (quotes included, already valid: from the functions above).
// A lone surrogate escape becomes U+FFFD.
std::string JsonStringValue(std::string_view token);

}  // namespace ferry::bus
