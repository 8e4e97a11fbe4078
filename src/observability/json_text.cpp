#include "observability/json_text.hpp"

#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <cmath>

namespace ferry::observability {
namespace {

void Append(const boost::json::value& value, std::string& out) {
  switch (value.kind()) {
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& [key, item] : value.get_object()) {
        if (!first) out += ',';
        first = false;
        out += boost::json::serialize(key);
        out += ':';
        Append(item, out);
      }
      out += '}';
      return;
    }
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
    case boost::json::kind::double_: {
      const double d = value.get_double();
      if (!std::isfinite(d)) {
        out += "null";
      } else {
        fmt::format_to(std::back_inserter(out), "{}", d);  // shortest exact form
      }
      return;
    }
    default:
      out += boost::json::serialize(value);
  }
}

}  // namespace

std::string JsonText(const boost::json::value& value) {
  std::string out;
  Append(value, out);
  return out;
}

}  // namespace ferry::observability
