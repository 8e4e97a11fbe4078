#include "bus/api/cloudevents.hpp"

#include <fmt/format.h>

#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <ctime>

#include "core/ascii_run.hpp"
#include "http/headers.hpp"
#include "observability/access_log_entry.hpp"
#include "observability/json_text.hpp"

namespace ferry::bus {
namespace {

constexpr std::string_view kStructured = "application/cloudevents+json";
constexpr std::string_view kBatch = "application/cloudevents-batch+json";

// The media type without parameters: "Application/JSON; charset=utf-8" -> "Application/JSON".
// Media types compare case-insensitively (RFC 9110, 8.3.1).
std::string_view MediaType(std::string_view content_type) {
  std::string_view out = content_type.substr(0, content_type.find(';'));
  while (!out.empty() && (out.back() == ' ' || out.back() == '\t')) out.remove_suffix(1);
  while (!out.empty() && (out.front() == ' ' || out.front() == '\t')) out.remove_prefix(1);
  return out;
}

bool IsJsonType(std::string_view media) {
  return http::EqualsIgnoreCase(media, "application/json") ||
         http::EqualsIgnoreCase(media, "text/json") ||
         (media.size() > 5 && http::EqualsIgnoreCase(media.substr(media.size() - 5), "+json"));
}

// Text that can travel as a JSON string as it is: valid UTF-8 without control characters other
// than whitespace. Anything else is sent as data_base64.
bool IsValidUtf8Text(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    i = AsciiRunEnd(s, i);  // printable ASCII, the bulk of most text
    if (i == s.size()) break;
    const unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t extra;
    if (c < 0x80) {
      if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') return false;
      extra = 0;
    } else if ((c >> 5) == 0x6) {
      extra = 1;
    } else if ((c >> 4) == 0xe) {
      extra = 2;
    } else if ((c >> 3) == 0x1e) {
      extra = 3;
    } else {
      return false;
    }
    if (i + extra >= s.size() + (extra == 0 ? 1 : 0) && extra > 0) return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return false;
    }
    i += extra + 1;
  }
  return true;
}

tl::unexpected<Error> Malformed(std::string why) {
  return Fail(ErrorCode::kInvalidArgument, "malformed CloudEvent: " + why);
}

// A structured-mode event (one JSON object) into a Message.
Result<Message> FromJson(const boost::json::value& v) {
  if (!v.is_object()) return Malformed("an event must be a JSON object");
  const boost::json::object& o = v.as_object();
  Message m;
  auto str = [&](std::string_view key, std::string& out, bool required) -> Result<void> {
    auto it = o.find(key);
    if (it == o.end()) {
      if (required) return Malformed(fmt::format("missing required attribute '{}'", key));
      return Ok();
    }
    if (!it->value().is_string())
      return Malformed(fmt::format("attribute '{}' must be a string", key));
    out = std::string(it->value().as_string());
    if (required && out.empty()) return Malformed(fmt::format("attribute '{}' is empty", key));
    return Ok();
  };
  std::string specversion;
  if (auto r = str("specversion", specversion, true); !r) return tl::unexpected(r.error());
  if (specversion != "1.0") return Malformed("specversion must be \"1.0\"");
  for (auto [key, field, required] :
       std::array<std::tuple<std::string_view, std::string*, bool>, 6>{
           {{"id", &m.id, true},
            {"source", &m.source, true},
            {"type", &m.type, true},
            {"subject", &m.subject, false},
            {"datacontenttype", &m.content_type, false},
            {"partitionkey", &m.key, false}}}) {
    if (auto r = str(key, *field, required); !r) return tl::unexpected(r.error());
  }
  if (auto it = o.find("data_base64"); it != o.end()) {
    if (!it->value().is_string()) return Malformed("data_base64 must be a string");
    auto bytes = Base64Decode(it->value().as_string());
    if (!bytes) return Malformed("data_base64 is not valid base64");
    m.data = std::move(*bytes);
  } else if (auto d = o.find("data"); d != o.end()) {
    if (d->value().is_string() && !IsJsonType(MediaType(m.content_type))) {
      m.data = std::string(d->value().as_string());
    } else {
      m.data = observability::JsonText(d->value());
      if (m.content_type.empty()) m.content_type = "application/json";
    }
  }
  for (const auto& [key, value] : o) {
    static constexpr std::array<std::string_view, 10> kKnown = {
        "specversion",     "id",           "source", "type",        "subject",
        "datacontenttype", "partitionkey", "data",   "data_base64", "time"};
    if (std::find(kKnown.begin(), kKnown.end(), std::string_view(key)) != kKnown.end()) continue;
    if (value.is_string()) {
      m.attributes[std::string(key)] = std::string(value.as_string());
    } else if (value.is_int64() || value.is_uint64() || value.is_bool()) {
      m.attributes[std::string(key)] = observability::JsonText(value);
    } else {
      return Malformed(fmt::format("extension attribute '{}' must be a string, number or bool",
                                   std::string_view(key)));
    }
  }
  return m;
}

}  // namespace

bool IsBatchPublish(const http::Headers& headers) {
  return http::EqualsIgnoreCase(MediaType(headers.Get("content-type").value_or("")), kBatch);
}

Result<std::vector<Message>> ParsePublish(const http::Headers& headers, std::string_view body) {
  const std::string_view content_type = headers.Get("content-type").value_or("");
  const std::string_view media = MediaType(content_type);
  const auto idempotency_key = headers.Get("idempotency-key");
  std::vector<Message> out;
  const bool batch = http::EqualsIgnoreCase(media, kBatch);
  if (batch || http::EqualsIgnoreCase(media, kStructured)) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(body, ec);
    if (ec) return Malformed("body is not valid JSON: " + ec.message());
    if (batch) {
      if (!v.is_array()) return Malformed("a batch must be a JSON array of events");
      if (v.as_array().empty()) return Malformed("a batch must not be empty");
      for (const auto& item : v.as_array()) {
        auto m = FromJson(item);
        if (!m) return tl::unexpected(m.error());
        out.push_back(std::move(*m));
      }
      return out;
    }
    auto m = FromJson(v);
    if (!m) return tl::unexpected(m.error());
    out.push_back(std::move(*m));
    return out;
  }
  Message m;
  if (headers.Has("ce-specversion")) {
    // Binary mode.
    if (*headers.Get("ce-specversion") != "1.0") return Malformed("ce-specversion must be 1.0");
    for (auto [name, field] : std::array<std::pair<std::string_view, std::string*>, 3>{
             {{"ce-id", &m.id}, {"ce-source", &m.source}, {"ce-type", &m.type}}}) {
      auto v = headers.Get(name);
      if (!v || v->empty()) return Malformed(fmt::format("missing required header {}", name));
      *field = std::string(*v);
    }
    headers.ForEach([&](const http::Headers::Field& f) {
      if (f.name.size() <= 3 || !http::EqualsIgnoreCase(f.name.substr(0, 3), "ce-")) return;
      const std::string_view attr = f.name.substr(3);
      const auto is = [attr](std::string_view name) { return http::EqualsIgnoreCase(attr, name); };
      if (is("specversion") || is("id") || is("source") || is("type") || is("time")) return;
      if (is("subject")) {
        m.subject = std::string(f.value);
      } else if (is("partitionkey")) {
        m.key = std::string(f.value);
      } else {
        std::string name(attr);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        m.attributes[std::move(name)] = std::string(f.value);
      }
    });
  } else if (idempotency_key) {
    m.id = std::string(*idempotency_key);
  }
  if (m.id.empty() && idempotency_key) m.id = std::string(*idempotency_key);
  m.content_type = std::string(content_type);
  m.data = std::string(body);
  out.push_back(std::move(m));
  return out;
}

boost::json::object DeliveryToJson(const Delivery& d) {
  boost::json::object o;
  const Message& m = d.message;
  o["id"] = m.id;
  o["receipt"] = d.receipt;
  o["attempt"] = d.attempt;
  o["sequence"] = d.sequence;
  o["specversion"] = "1.0";
  if (!m.source.empty()) o["source"] = m.source;
  if (!m.type.empty()) o["type"] = m.type;
  if (!m.subject.empty()) o["subject"] = m.subject;
  if (!m.key.empty()) o["partitionkey"] = m.key;
  if (!m.content_type.empty()) o["datacontenttype"] = m.content_type;
  o["time"] = FormatRfc3339(m.published_at);
  o["lease_expires"] = FormatRfc3339(d.lease_expires);
  for (const auto& [k, v] : m.attributes) o[k] = v;
  if (IsJsonType(MediaType(m.content_type))) {
    boost::system::error_code ec;
    boost::json::value data = boost::json::parse(m.data, ec);
    if (!ec) {
      o["data"] = std::move(data);
      return o;
    }
  }
  if (IsValidUtf8Text(m.data)) {
    o["data"] = m.data;
  } else {
    o["data_base64"] = Base64Encode(m.data);
  }
  return o;
}

boost::json::object DeadLetterToJson(const DeadLetter& dead) {
  Delivery as_delivery;
  as_delivery.message = dead.message;
  as_delivery.sequence = dead.sequence;
  as_delivery.attempt = dead.attempts;
  boost::json::object o = DeliveryToJson(as_delivery);
  o.erase("receipt");
  o.erase("lease_expires");
  o.erase("attempt");
  o["attempts"] = dead.attempts;
  o["reason"] = dead.reason;
  o["dead_lettered_at"] = FormatRfc3339(dead.dead_lettered_at);
  return o;
}

void AddBinaryModeHeaders(const Delivery& d, http::Headers& headers) {
  const Message& m = d.message;
  headers.Add("ce-specversion", "1.0");
  headers.Add("ce-id", m.id);
  if (!m.source.empty()) headers.Add("ce-source", m.source);
  if (!m.type.empty()) headers.Add("ce-type", m.type);
  if (!m.subject.empty()) headers.Add("ce-subject", m.subject);
  if (!m.key.empty()) headers.Add("ce-partitionkey", m.key);
  headers.Add("ce-time", FormatRfc3339(m.published_at));
  for (const auto& [k, v] : m.attributes) headers.Add("ce-" + k, v);
  if (!m.content_type.empty()) headers.Add("content-type", m.content_type);
}

std::string Base64Encode(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
  };
  while (!text.empty() && text.back() == '=') text.remove_suffix(1);
  std::string out;
  unsigned acc = 0;
  int bits = 0;
  for (char c : text) {
    const int v = value(c);
    if (v < 0) return Fail(ErrorCode::kInvalidArgument, "invalid base64");
    acc = (acc << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string FormatRfc3339(BusTime time) {
  std::string out;
  observability::AppendRfc3339(time, 6, out);
  return out;
}

Result<BusTime> ParseRfc3339(std::string_view text) {
  std::tm tm{};
  int year, mon, day, hour, min, sec, consumed = 0;
  const std::string s(text);
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min, &sec,
                  &consumed) != 6) {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("invalid time '{}': expected RFC 3339, like 2026-01-02T15:04:05Z", text));
  }
  std::string_view rest = std::string_view(s).substr(static_cast<std::size_t>(consumed));
  std::int64_t micros = 0;
  if (!rest.empty() && rest.front() == '.') {
    rest.remove_prefix(1);
    int digits = 0;
    while (!rest.empty() && std::isdigit(static_cast<unsigned char>(rest.front()))) {
      if (digits < 6) micros = micros * 10 + (rest.front() - '0');
      ++digits;
      rest.remove_prefix(1);
    }
    for (; digits < 6; ++digits) micros *= 10;
  }
  if (rest != "Z" && rest != "z" && rest != "+00:00") {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("invalid time '{}': use UTC (Z)", text));
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  const std::time_t t = timegm(&tm);
  return BusTime(std::chrono::seconds(t)) + std::chrono::microseconds(micros);
}

}  // namespace ferry::bus
