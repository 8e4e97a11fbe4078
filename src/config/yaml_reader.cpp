#include "config/yaml_reader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

namespace ferry::config::internal {
namespace {

// What a scalar is, as a YAML 1.1 tool (PyYAML, most editors) would resolve it. Ferry refuses
// a plain scalar whose resolved type differs from the field's, so a file that passes Ferry
// also passes the JSON Schema.
enum class ScalarKind { kNull, kBool, kInt, kFloat, kString };

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsIntText(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
  return !s.empty() && std::all_of(s.begin(), s.end(), IsDigit);
}

bool IsFloatText(std::string_view s) {
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) s.remove_prefix(1);
  static constexpr std::array<std::string_view, 6> kSpecial = {".inf", ".Inf", ".INF",
                                                               ".nan", ".NaN", ".NAN"};
  if (std::find(kSpecial.begin(), kSpecial.end(), s) != kSpecial.end()) return true;
  std::size_t i = 0, digits = 0;
  while (i < s.size() && IsDigit(s[i])) ++i, ++digits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && IsDigit(s[i])) ++i, ++digits;
  }
  if (digits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '-' || s[i] == '+')) ++i;
    if (i == s.size()) return false;
    while (i < s.size() && IsDigit(s[i])) ++i;
  }
  return i == s.size();
}

bool IsBoolText(std::string_view s) {
  static constexpr std::array<std::string_view, 18> kBools = {
      "true", "True", "TRUE", "false", "False", "FALSE", "yes", "Yes", "YES",
      "no",   "No",   "NO",   "on",    "On",    "ON",    "off", "Off", "OFF"};
  return std::find(kBools.begin(), kBools.end(), s) != kBools.end();
}

ScalarKind Classify(const YAML::Node& node) {
  if (node.IsNull()) return ScalarKind::kNull;
  // "!" is a quoted or block scalar; any explicit tag is taken at its word as text.
  if (node.Tag() != "?") return ScalarKind::kString;
  const std::string& s = node.Scalar();
  if (IsBoolText(s)) return ScalarKind::kBool;
  if (IsIntText(s)) return ScalarKind::kInt;
  if (IsFloatText(s)) return ScalarKind::kFloat;
  return ScalarKind::kString;
}

std::string_view KindName(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return "nothing (null)";
    case YAML::NodeType::Scalar:
      break;
  }
  switch (Classify(node)) {
    case ScalarKind::kNull:
      return "nothing (null)";
    case ScalarKind::kBool:
      return "a boolean";
    case ScalarKind::kInt:
      return "an integer";
    case ScalarKind::kFloat:
      return "a number";
    case ScalarKind::kString:
      break;
  }
  return "a string";
}

void WrongType(const Field& field, std::string_view expected, Diagnostics& diags) {
  diags.Add(field.mark,
            Describe(field, fmt::format("expected {}, got {}", expected, KindName(field.node))));
}

}  // namespace

void Diagnostics::Add(const YAML::Mark& mark, std::string message) {
  if (mark.is_null()) {
    entries_.push_back({1, 1, std::move(message)});
  } else {
    entries_.push_back({mark.line + 1, mark.column + 1, std::move(message)});
  }
}

std::string Diagnostics::Render() const {
  std::vector<Entry> sorted = entries_;
  std::stable_sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) {
    return std::tie(a.line, a.column) < std::tie(b.line, b.column);
  });
  std::string out;
  for (const Entry& e : sorted) {
    if (!out.empty()) out += '\n';
    out += fmt::format("{}:{}:{}: {}", file_, e.line, e.column, e.message);
  }
  return out;
}

std::string Describe(const Field& field, std::string_view message) {
  if (field.path.empty()) return std::string(message);
  return fmt::format("{}: {}", field.path, message);
}

MapReader::MapReader(const Field& field, Diagnostics& diags) : field_(field), diags_(diags) {
  if (!field.node.IsMap()) {
    WrongType(field, "a map", diags);
    return;
  }
  ok_ = true;
  // yaml-cpp 0.7 keeps every pair of a map with a repeated key but lookups see only the first,
  // so a repeated key would be ignored silently: find them by walking the pairs.
  // Copies, not references: yaml-cpp's iterator yields a temporary pair.
  for (auto it = field.node.begin(); it != field.node.end(); ++it) {
    const YAML::Node key = it->first;
    if (!key.IsScalar()) {
      diags.Add(key.Mark(), Describe(field, "map keys must be plain strings"));
      continue;
    }
    const std::string name = key.Scalar();
    auto first = std::find_if(entries_.begin(), entries_.end(),
                              [&](const Entry& e) { return e.key == name; });
    if (first != entries_.end()) {
      diags.Add(key.Mark(),
                Describe(field, fmt::format("duplicate key '{}' (first defined at {}:{})", name,
                                            first->key_mark.line + 1, first->key_mark.column + 1)));
      continue;
    }
    const YAML::Node value = it->second;
    std::string path = field.path.empty() ? name : fmt::format("{}.{}", field.path, name);
    entries_.push_back(
        {name, key.Mark(), Field{value, value.IsNull() ? key.Mark() : value.Mark(), path}});
  }
}

std::optional<Field> MapReader::Take(std::string_view key) {
  known_.emplace_back(key);
  for (Entry& e : entries_) {
    if (e.key == key) {
      e.taken = true;
      return e.value;
    }
  }
  return std::nullopt;
}

std::vector<MapReader::Entry> MapReader::TakeAll() {
  for (Entry& e : entries_) e.taken = true;
  return entries_;
}

void MapReader::Finish() {
  for (const Entry& e : entries_) {
    if (e.taken) continue;
    const std::string message =
        fmt::format("unknown {}key '{}' (expected one of: {})",
                    field_.path.empty() ? "top-level " : "", e.key, fmt::join(known_, ", "));
    diags_.Add(e.key_mark, Describe(field_, message));
  }
}

std::optional<std::vector<Field>> ReadSequence(const Field& field, Diagnostics& diags) {
  if (!field.node.IsSequence()) {
    WrongType(field, "a list", diags);
    return std::nullopt;
  }
  std::vector<Field> out;
  for (std::size_t i = 0; i < field.node.size(); ++i) {
    YAML::Node item = field.node[i];
    out.push_back(Field{item, item.IsNull() ? field.mark : item.Mark(),
                        fmt::format("{}[{}]", field.path, i)});
  }
  return out;
}

std::optional<std::string> ReadString(const Field& field, Diagnostics& diags) {
  if (!field.node.IsScalar() || Classify(field.node) != ScalarKind::kString) {
    std::string expected = "a string";
    if (field.node.IsScalar() && !field.node.IsNull()) expected += " (quote it to use it as text)";
    WrongType(field, expected, diags);
    return std::nullopt;
  }
  return field.node.Scalar();
}

std::optional<bool> ReadBool(const Field& field, Diagnostics& diags) {
  if (field.node.IsScalar() && field.node.Tag() == "?") {
    const std::string& s = field.node.Scalar();
    if (s == "true" || s == "True" || s == "TRUE") return true;
    if (s == "false" || s == "False" || s == "FALSE") return false;
  }
  if (field.node.IsScalar()) {
    diags.Add(field.mark, Describe(field, fmt::format("expected true or false, got '{}'",
                                                      field.node.Scalar())));
    return std::nullopt;
  }
  WrongType(field, "true or false", diags);
  return std::nullopt;
}

std::optional<std::int64_t> ReadInt(const Field& field, std::int64_t min, std::int64_t max,
                                    Diagnostics& diags) {
  if (!field.node.IsScalar() || Classify(field.node) != ScalarKind::kInt) {
    WrongType(field, "an integer", diags);
    return std::nullopt;
  }
  std::string_view s = field.node.Scalar();
  if (s.front() == '+') s.remove_prefix(1);
  std::int64_t value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || value < min || value > max) {
    diags.Add(field.mark,
              Describe(field, fmt::format("must be an integer between {} and {}, got {}", min, max,
                                          field.node.Scalar())));
    return std::nullopt;
  }
  return value;
}

std::optional<double> ReadNumber(const Field& field, double min, Diagnostics& diags) {
  const ScalarKind kind = field.node.IsScalar() ? Classify(field.node) : ScalarKind::kNull;
  if (kind != ScalarKind::kInt && kind != ScalarKind::kFloat) {
    WrongType(field, "a number", diags);
    return std::nullopt;
  }
  // from_chars refuses YAML's ".inf" and ".nan", which is what we want.
  std::string_view s = field.node.Scalar();
  if (s.front() == '+') s.remove_prefix(1);
  double value = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(value) || value < min) {
    diags.Add(field.mark, Describe(field, fmt::format("must be a number of at least {}, got {}",
                                                      min, field.node.Scalar())));
    return std::nullopt;
  }
  return value;
}

std::optional<Duration> ReadDuration(const Field& field, Diagnostics& diags) {
  const ScalarKind kind = field.node.IsScalar() ? Classify(field.node) : ScalarKind::kNull;
  if (kind != ScalarKind::kString && !(kind == ScalarKind::kInt && field.node.Scalar() == "0")) {
    WrongType(field, "a duration like 250ms, 2s or 1m30s", diags);
    return std::nullopt;
  }
  auto parsed = ParseDuration(field.node.Scalar());
  if (!parsed) {
    diags.Add(field.mark, Describe(field, parsed.error().message()));
    return std::nullopt;
  }
  return *parsed;
}

std::optional<std::uint64_t> ReadSize(const Field& field, std::uint64_t max, Diagnostics& diags) {
  const ScalarKind kind = field.node.IsScalar() ? Classify(field.node) : ScalarKind::kNull;
  if (kind != ScalarKind::kString && kind != ScalarKind::kInt) {
    WrongType(field, "a size like 65536, 64KiB or 1MiB", diags);
    return std::nullopt;
  }
  auto parsed = ParseSize(field.node.Scalar());
  if (!parsed) {
    diags.Add(field.mark, Describe(field, parsed.error().message()));
    return std::nullopt;
  }
  if (*parsed > max) {
    diags.Add(field.mark, Describe(field, fmt::format("size {} is larger than the maximum {} bytes",
                                                      field.node.Scalar(), max)));
    return std::nullopt;
  }
  return *parsed;
}

std::optional<double> ReadRatio(const Field& field, Diagnostics& diags) {
  const ScalarKind kind = field.node.IsScalar() ? Classify(field.node) : ScalarKind::kNull;
  if (kind != ScalarKind::kString && kind != ScalarKind::kInt && kind != ScalarKind::kFloat) {
    WrongType(field, "a ratio like 20% (or a number from 0 to 1)", diags);
    return std::nullopt;
  }
  auto parsed = ParseRatio(field.node.Scalar());
  if (!parsed) {
    diags.Add(field.mark, Describe(field, parsed.error().message()));
    return std::nullopt;
  }
  return *parsed;
}

bool IsHeaderName(std::string_view name) {
  constexpr std::string_view kExtra = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || kExtra.find(c) != std::string_view::npos;
  });
}

std::optional<std::string> ReadHeaderName(const Field& field, Diagnostics& diags) {
  auto name = ReadString(field, diags);
  if (!name) return std::nullopt;
  if (!IsHeaderName(*name)) {
    diags.Add(field.mark, Describe(field, fmt::format("invalid header name '{}'", *name)));
    return std::nullopt;
  }
  std::transform(name->begin(), name->end(), name->begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return name;
}

bool IsIntegerScalar(const Field& field) {
  return field.node.IsScalar() && Classify(field.node) == ScalarKind::kInt;
}

bool IsFalseScalar(const Field& field) {
  if (!field.node.IsScalar() || field.node.Tag() != "?") return false;
  const std::string& s = field.node.Scalar();
  return s == "false" || s == "False" || s == "FALSE";
}

void StrictReader::Error(const Field& field, std::string_view message) {
  d_.Add(field.mark, Describe(field, message));
}

std::optional<Field> StrictReader::Require(MapReader& map, const Field& parent,
                                           std::string_view key) {
  auto field = map.Take(key);
  if (!field && map.ok()) Error(parent, fmt::format("missing required key '{}'", key));
  return field;
}

std::optional<Duration> StrictReader::Positive(const Field& field) {
  auto value = ReadDuration(field, d_);
  if (value && *value <= Duration::zero()) {
    Error(field, "must be greater than 0");
    return std::nullopt;
  }
  return value;
}

}  // namespace ferry::config::internal
