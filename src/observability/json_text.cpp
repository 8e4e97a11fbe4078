#include "observability/json_text.hpp"

#include <fmt/format.h>

#include <boost/json/value.hpp>
#include <charconv>
#include <cmath>

#include "observability/access_log_entry.hpp"

namespace ferry::observability {
namespace {

// Keys and strings go through the access log's escaper (no serializer per scalar: this writes
// every bus delivery): quotes, backslashes and control characters escaped, invalid UTF-8
// replaced by U+FFFD so that the text is always valid JSON.
void AppendString(std::string_view s, std::string& out) {
  out += '"';
  AppendJsonStringContent(s, out);
  out += '"';
}

template <typename Integer>
void AppendInteger(Integer n, std::string& out) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
}

void Append(const boost::json::value& value, std::string& out);

void AppendObject(const boost::json::object& object, std::string& out) {
  out += '{';
  bool first = true;
  for (const auto& [key, item] : object) {
    if (!first) out += ',';
    first = false;
    AppendString(key, out);
    out += ':';
    Append(item, out);
  }
  out += '}';
}

void Append(const boost::json::value& value, std::string& out) {
  switch (value.kind()) {
    case boost::json::kind::object:
      AppendObject(value.get_object(), out);
      return;
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : value.get_array()) {
        if (!first) out += ',';
        first = false;
        Append(item, out);
      }
      out += ']';
      return;
    }
    case boost::json::kind::string:
      AppendString(value.get_string(), out);
      return;
    case boost::json::kind::int64:
      AppendInteger(value.get_int64(), out);
      return;
    case boost::json::kind::uint64:
      AppendInteger(value.get_uint64(), out);
      return;
    case boost::json::kind::bool_:
      out += value.get_bool() ? "true" : "false";
      return;
    case boost::json::kind::null:
      out += "null";
      return;
    case boost::json::kind::double_: {
      const double d = value.get_double();
      if (!std::isfinite(d)) {
        out += "null";
      } else {
        fmt::format_to(std::back_inserter(out), "{}", d);  // shortest exact form
      }
      return;
    }
  }
}

}  // namespace

std::string JsonText(const boost::json::value& value) {
  std::string out;
  Append(value, out);
  return out;
}

std::string JsonText(const boost::json::object& object) {
  std::string out;
  AppendObject(object, out);
  return out;
}

}  // namespace ferry::observability
