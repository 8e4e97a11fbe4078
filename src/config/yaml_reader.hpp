// Strict walking of a yaml-cpp node tree: typed scalar reads, maps that reject unknown and
// duplicate keys, and a sink that collects every problem as "file:line:col: message".
// Internal to src/config. Not thread-safe; one reader per load. Never throws: every problem is
// recorded in Diagnostics and the read returns std::nullopt.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/units.hpp"

namespace ferry::config::internal {

// Every problem found during one load, rendered sorted by position, one per line.
class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}
  // mark is yaml-cpp's 0-based mark; it is printed 1-based.
  void Add(const YAML::Mark& mark, std::string message);
  bool empty() const { return entries_.empty(); }
  std::size_t size() const { return entries_.size(); }
  std::string Render() const;

 private:
  struct Entry {
    int line;
    int column;
    std::string message;
  };
  std::string file_;
  std::vector<Entry> entries_;
};

// A node, where it is, and its path in the config ("listeners[0].limits") for messages.
// mark is the value's position, or the key's when the value is null (yaml-cpp puts a null's
// mark at the next token, which is confusing).
struct Field {
  YAML::Node node;
  YAML::Mark mark;
  std::string path;
};

// Starts a message with the field's path: "listeners[0].listen: ...".
std::string Describe(const Field& field, std::string_view message);

// A YAML mapping read key by key. Duplicate keys are reported on construction; keys never
// asked for with Take() are reported as unknown by Finish().
class MapReader {
 public:
  // Reports an error when field is not a map; then every Take() returns nullopt.
  MapReader(const Field& field, Diagnostics& diags);
  bool ok() const { return ok_; }
  std::optional<Field> Take(std::string_view key);
  // The entries of a map whose keys are names (services, headers), in file order, duplicates
  // already dropped. Marks the whole map as consumed.
  struct Entry {
    std::string key;
    YAML::Mark key_mark;
    Field value;
    bool taken = false;
  };
  std::vector<Entry> TakeAll();
  // Reports every key that was not taken.
  void Finish();

 private:
  Field field_;
  Diagnostics& diags_;
  bool ok_ = false;
  std::vector<Entry> entries_;
  std::vector<std::string> known_;
};

// The elements of a sequence, with paths "path[i]"; nullopt (and an error) if not a sequence.
std::optional<std::vector<Field>> ReadSequence(const Field& field, Diagnostics& diags);

// Scalars. A plain (unquoted) scalar must look like the type asked for: `4` is an integer,
// `"4"` is a string, `yes` is a boolean to YAML 1.1 tools and so is refused as a string.
std::optional<std::string> ReadString(const Field& field, Diagnostics& diags);
std::optional<bool> ReadBool(const Field& field, Diagnostics& diags);
std::optional<std::int64_t> ReadInt(const Field& field, std::int64_t min, std::int64_t max,
                                    Diagnostics& diags);
// A finite number: an integer (`2`) or a decimal (`1.5`), at least min.
std::optional<double> ReadNumber(const Field& field, double min, Diagnostics& diags);
// Durations are strings with units ("250ms"); a bare 0 is allowed.
std::optional<Duration> ReadDuration(const Field& field, Diagnostics& diags);
// Sizes are integers (bytes) or strings with units ("64KiB"), at most max.
std::optional<std::uint64_t> ReadSize(const Field& field, std::uint64_t max, Diagnostics& diags);
// Ratios are percentages ("20%") or plain numbers from 0 to 1 (0.2).
std::optional<double> ReadRatio(const Field& field, Diagnostics& diags);
// An HTTP header field name (an RFC 9110 token), returned in lowercase.
std::optional<std::string> ReadHeaderName(const Field& field, Diagnostics& diags);
bool IsHeaderName(std::string_view name);
// True when the field is a plain scalar that YAML resolves to an integer (`502`, not `"502"`).
bool IsIntegerScalar(const Field& field);
// True when the field is a plain `false` (a block switched off).
bool IsFalseScalar(const Field& field);

// What the config readers (loader.cpp, bus_loader.cpp) share: errors reported at a field, and
// the usual shapes of a read. Derive from it; it holds only the Diagnostics it reports to.
class StrictReader {
 protected:
  explicit StrictReader(Diagnostics& diags) : d_(diags) {}

  // Reports "path: message" at the field.
  void Error(const Field& field, std::string_view message);

  // Sets out from map[key] when present and valid; leaves the default otherwise.
  template <typename T, typename Read>
  void Assign(MapReader& map, std::string_view key, T& out, Read read) {
    if (auto field = map.Take(key)) {
      if (auto value = read(*field)) out = static_cast<T>(*value);
    }
  }

  // map[key], or an error at parent ("missing required key") unless the map itself was bad.
  std::optional<Field> Require(MapReader& map, const Field& parent, std::string_view key);

  // A duration greater than zero.
  std::optional<Duration> Positive(const Field& field);

  Diagnostics& d_;
};

}  // namespace ferry::config::internal
