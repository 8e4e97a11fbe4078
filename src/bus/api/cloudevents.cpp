#include "bus/api/cloudevents.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>

#include "bus/api/json_span.hpp"
#include "config/bus_rules.hpp"
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

// Context attributes with a field of their own in Message, or no place among the extensions.
bool IsContextAttribute(std::string_view name) {
  static constexpr std::array<std::string_view, 10> kNames = {
      "specversion",     "id",           "source", "type",        "subject",
      "datacontenttype", "partitionkey", "data",   "data_base64", "time"};
  return std::find(kNames.begin(), kNames.end(), name) != kNames.end();
}

// The rules of the attributes with a format (the required ones are checked for presence by
// the caller): source a URI-reference, dataschema an absolute URI. nullopt: fine.
std::optional<std::string> AttributeProblem(std::string_view name, std::string_view value) {
  if (name == "source" && !config::IsUriReference(value)) {
    return fmt::format(
        "source '{}' is not a URI-reference (RFC 3986), like /shop/orders or "
        "https://shop.example/orders",
        value);
  }
  if (name == "dataschema" && !config::IsAbsoluteUri(value)) {
    return fmt::format("dataschema '{}' is not an absolute URI (RFC 3986)", value);
  }
  return std::nullopt;
}

// CloudEvents strings exclude the control characters U+0000-U+001F and U+007F-U+009F; in a
// structured event, JSON escapes can carry any of them, and a CR LF would start a header of its
// own in the ce-* headers of a push.
bool HasControlCharacter(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
      return true;  // U+0080-U+009F
    }
  }
  return false;
}

// The first attribute of `m` that holds a control character, if any.
std::optional<std::string> ControlCharacterProblem(const Message& m) {
  for (const auto& [name, value] : std::array<std::pair<std::string_view, const std::string*>, 6>{
           {{"id", &m.id},
            {"source", &m.source},
            {"type", &m.type},
            {"subject", &m.subject},
            {"datacontenttype", &m.content_type},
            {"partitionkey", &m.key}}}) {
    if (HasControlCharacter(*value)) {
      return fmt::format("attribute '{}' holds a control character", name);
    }
  }
  for (const auto& [name, value] : m.attributes) {
    if (HasControlCharacter(value)) {
      return fmt::format("attribute '{}' holds a control character", name);
    }
  }
  return std::nullopt;
}

bool IsIntegerToken(std::string_view token) {
  if (!token.empty() && token.front() == '-') token.remove_prefix(1);
  return !token.empty() &&
         std::all_of(token.begin(), token.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A structured-mode event (the text of one JSON object) into a Message. The `data` member is
// kept as its text in the request (or, for a string that is not JSON data, its value).
Result<Message> FromJson(std::string_view text) {
  std::string error;
  auto members = JsonObjectMembers(text, &error);
  if (!members) {
    if (text.find_first_not_of(" \t\r\n") != std::string_view::npos &&
        text[text.find_first_not_of(" \t\r\n")] != '{') {
      return Malformed("an event must be a JSON object");
    }
    return Malformed("body is not valid JSON: " + error);
  }
  std::map<std::string_view, std::string_view> by_name;
  for (const JsonMember& member : *members) {
    if (!by_name.emplace(member.key, member.value).second) {
      return Malformed(fmt::format("attribute '{}' appears twice", member.key));
    }
  }
  const auto find = [&](std::string_view key) -> std::optional<std::string_view> {
    auto it = by_name.find(key);
    if (it == by_name.end()) return std::nullopt;
    return it->second;
  };
  Message m;
  auto str = [&](std::string_view key, std::string& out, bool required) -> Result<void> {
    auto token = find(key);
    if (!token) {
      if (required) return Malformed(fmt::format("missing required attribute '{}'", key));
      return Ok();
    }
    if (token->front() != '"')
      return Malformed(fmt::format("attribute '{}' must be a string", key));
    out = JsonStringValue(*token);
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
  if (auto problem = AttributeProblem("source", m.source)) return Malformed(*problem);
  std::string time;
  if (auto r = str("time", time, false); !r) return tl::unexpected(r.error());
  if (find("time")) {
    if (!IsRfc3339(time)) {
      return Malformed(fmt::format(
          "time '{}' is not an RFC 3339 date-time, like 2026-01-02T15:04:05.123Z", time));
    }
    m.attributes["time"] = std::move(time);
  }
  const auto data = find("data");
  const auto data_base64 = find("data_base64");
  if (data && data_base64) {
    return Malformed("an event has both data and data_base64: give one of them");
  }
  if (data_base64) {
    if (data_base64->front() != '"') return Malformed("data_base64 must be a string");
    auto bytes = Base64Decode(JsonStringValue(*data_base64));
    if (!bytes) return Malformed("data_base64 is not valid base64");
    m.data = std::move(*bytes);
  } else if (data) {
    if (data->front() == '"' && !IsJsonType(MediaType(m.content_type))) {
      m.data = JsonStringValue(*data);
    } else {
      m.data = std::string(*data);  // the JSON value exactly as sent
      if (m.content_type.empty()) m.content_type = "application/json";
    }
  }
  for (const JsonMember& member : *members) {
    if (IsContextAttribute(member.key)) continue;
    if (!IsExtensionName(member.key)) {
      return Malformed(
          fmt::format("attribute name '{}' is not 1-20 lowercase letters or digits", member.key));
    }
    const std::string_view value = member.value;
    if (value.front() == '"') {
      std::string text = JsonStringValue(value);
      if (auto problem = AttributeProblem(member.key, text)) return Malformed(*problem);
      m.attributes[member.key] = std::move(text);
    } else if (IsIntegerToken(value) || value == "true" || value == "false") {
      if (auto problem = AttributeProblem(member.key, value)) return Malformed(*problem);
      m.attributes[member.key] = std::string(value);
    } else {
      return Malformed(
          fmt::format("extension attribute '{}' must be a string, integer or bool", member.key));
    }
  }
  if (auto problem = ControlCharacterProblem(m)) return Malformed(*problem);
  return m;
}

// The event's context attributes as a structured-mode object, without data.
boost::json::object EventAttributes(const Message& m, const EventDefaults& defaults,
                                    BusTime stored_at) {
  boost::json::object o;
  o["specversion"] = "1.0";
  o["id"] = m.id;
  o["source"] = m.source.empty() ? defaults.source : m.source;
  o["type"] = m.type.empty() ? defaults.type : m.type;
  if (!m.subject.empty()) o["subject"] = m.subject;
  if (!m.key.empty()) o["partitionkey"] = m.key;
  if (!m.content_type.empty()) o["datacontenttype"] = m.content_type;
  auto time = m.attributes.find("time");
  o["time"] = time != m.attributes.end() ? time->second : FormatRfc3339(stored_at);
  for (const auto& [k, v] : m.attributes) {
    if (!IsContextAttribute(k)) o[k] = v;
  }
  return o;
}

// How the stored data travels in JSON: its member name and its JSON text.
struct DataMember {
  std::string_view name;  // "data" or "data_base64"
  std::string text;       // JSON text of the value
};

DataMember DataOf(const Message& m) {
  if (IsJsonType(MediaType(m.content_type)) && IsJsonText(m.data)) {
    return {"data", m.data};  // the bytes as they were sent
  }
  std::string text = "\"";
  if (IsValidUtf8Text(m.data)) {
    observability::AppendJsonStringContent(m.data, text);
    text.push_back('"');
    return {"data", std::move(text)};
  }
  text.append(Base64Encode(m.data));
  text.push_back('"');
  return {"data_base64", std::move(text)};
}

// `o` as JSON with `data` as its last member, the closing brace left off.
void AppendOpenObject(const boost::json::object& o, const DataMember& data, std::string& out) {
  std::string text = observability::JsonText(o);
  text.pop_back();  // '}'
  out.append(text);
  if (!o.empty()) out.push_back(',');
  out.push_back('"');
  out.append(data.name);
  out.append("\":");
  out.append(data.text);
}

// A delivered message: Ferry's fields win over an extension of the same name (an event may
// carry a `receipt` extension; the message's receipt is Ferry's).
void AppendMessageJson(boost::json::object ferry_fields, const Message& m,
                       const EventDefaults& defaults, MessageFormat format, std::string& out) {
  const boost::json::object event = EventAttributes(m, defaults, m.published_at);
  const DataMember data = DataOf(m);
  if (format == MessageFormat::kEvent) {
    std::string text = observability::JsonText(ferry_fields);
    text.pop_back();  // '}'
    out.append(text);
    out.append(",\"event\":");
  } else {
    boost::json::object legacy = event;
    for (auto& field : ferry_fields) legacy[field.key()] = std::move(field.value());
    AppendOpenObject(legacy, data, out);
    out.append(",\"event\":");
  }
  AppendOpenObject(event, data, out);
  out.append("}}");
}

}  // namespace

std::string DefaultEventSource(const Destination& to) {
  return (to.kind == Destination::Kind::kQueue ? "/v1/queues/" : "/v1/topics/") + to.name;
}

bool IsJsonContentType(std::string_view content_type) {
  return IsJsonType(MediaType(content_type));
}

bool IsExtensionName(std::string_view name) {
  return !name.empty() && name.size() <= 20 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
  });
}

bool IsRfc3339(std::string_view t) {
  // full-date "T" partial-time [.frac] (Z / +hh:mm / -hh:mm), RFC 3339 section 5.6.
  const auto digits = [&t](std::size_t at, std::size_t n, int& out) {
    if (at + n > t.size()) return false;
    out = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int year, month, day, hour, minute, second;
  if (!digits(0, 4, year) || t.size() < 19 || t[4] != '-' || !digits(5, 2, month) || t[7] != '-' ||
      !digits(8, 2, day) || (t[10] != 'T' && t[10] != 't') || !digits(11, 2, hour) ||
      t[13] != ':' || !digits(14, 2, minute) || t[16] != ':' || !digits(17, 2, second)) {
    return false;
  }
  static constexpr std::array<int, 12> kDays = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1]) return false;
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month == 2 && day == 29 && !leap) return false;
  if (hour > 23 || minute > 59 || second > 60) return false;
  std::size_t i = 19;
  if (i < t.size() && t[i] == '.') {
    ++i;
    const std::size_t first = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    if (i == first) return false;
  }
  if (i < t.size() && (t[i] == 'Z' || t[i] == 'z')) return i + 1 == t.size();
  int oh, om;
  return i + 6 == t.size() && (t[i] == '+' || t[i] == '-') && digits(i + 1, 2, oh) &&
         t[i + 3] == ':' && digits(i + 4, 2, om) && oh <= 23 && om <= 59;
}

bool IsBatchPublish(const http::Headers& headers) {
  return http::EqualsIgnoreCase(MediaType(headers.Get("content-type").value_or("")), kBatch);
}

Result<std::vector<Message>> ParsePublish(const http::Headers& headers, std::string_view body,
                                          const EventDefaults& defaults) {
  const std::string_view content_type = headers.Get("content-type").value_or("");
  const std::string_view media = MediaType(content_type);
  const auto idempotency_key = headers.Get("idempotency-key");
  std::vector<Message> out;
  const bool batch = http::EqualsIgnoreCase(media, kBatch);
  if (batch) {
    std::string error;
    auto items = JsonArrayElements(body, &error);
    if (!items) {
      if (IsJsonText(body)) return Malformed("a batch must be a JSON array of events");
      return Malformed("body is not valid JSON: " + error);
    }
    if (items->empty()) return Malformed("a batch must not be empty");
    for (std::string_view item : *items) {
      auto m = FromJson(item);
      if (!m) return tl::unexpected(m.error());
      out.push_back(std::move(*m));
    }
    return out;
  }
  if (http::EqualsIgnoreCase(media, kStructured)) {
    auto m = FromJson(body);
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
    if (auto problem = AttributeProblem("source", m.source)) return Malformed(*problem);
    std::optional<Error> bad;
    headers.ForEach([&](const http::Headers::Field& f) {
      if (bad || f.name.size() <= 3 || !http::EqualsIgnoreCase(f.name.substr(0, 3), "ce-")) {
        return;
      }
      // Header names are case-insensitive: the attribute is the name in lowercase.
      std::string name(f.name.substr(3));
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (name == "specversion" || name == "id" || name == "source" || name == "type" ||
          name == "datacontenttype") {
        return;  // read above, or content-type's
      }
      if (name == "subject") {
        m.subject = std::string(f.value);
      } else if (name == "partitionkey") {
        m.key = std::string(f.value);
      } else if (name == "time") {
        if (!IsRfc3339(f.value)) {
          bad = Error(ErrorCode::kInvalidArgument,
                      fmt::format("malformed CloudEvent: ce-time '{}' is not an RFC 3339 "
                                  "date-time, like 2026-01-02T15:04:05.123Z",
                                  f.value));
          return;
        }
        m.attributes["time"] = std::string(f.value);
      } else if (!IsExtensionName(name)) {
        bad = Error(ErrorCode::kInvalidArgument,
                    fmt::format("malformed CloudEvent: header {}: attribute name '{}' is not "
                                "1-20 lowercase letters or digits",
                                f.name, name));
      } else if (auto problem = AttributeProblem(name, f.value)) {
        bad = Error(ErrorCode::kInvalidArgument, "malformed CloudEvent: " + *problem);
      } else {
        m.attributes[std::move(name)] = std::string(f.value);
      }
    });
    if (bad) return tl::unexpected(std::move(*bad));
  } else {
    for (std::string_view name : {"ce-id", "ce-source", "ce-type"}) {
      if (headers.Has(name)) {
        return Malformed(fmt::format(
            "{} without ce-specversion: a binary-mode event needs ce-specversion: 1.0 (a plain "
            "body would get a new id, and lose its de-duplication key)",
            name));
      }
    }
    if (idempotency_key) m.id = std::string(*idempotency_key);
    m.source = defaults.source;
    m.type = defaults.type;
  }
  if (IsJsonType(media) && !IsJsonText(body)) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("the body is not valid JSON, but its content-type is {}: send it "
                            "with the content type it has (e.g. application/octet-stream)",
                            content_type));
  }
  // Header values are not checked for control characters: the HTTP parser lets no ASCII one but
  // HTAB through, so they cannot break a push's headers (and an Idempotency-Key with a tab is
  // accepted since before this rule).
  m.content_type = std::string(content_type);
  m.data = std::string(body);
  out.push_back(std::move(m));
  return out;
}

void AppendDeliveryJson(const Delivery& d, const EventDefaults& defaults, MessageFormat format,
                        std::string& out) {
  boost::json::object ferry_fields;
  ferry_fields["id"] = d.message.id;
  ferry_fields["receipt"] = d.receipt;
  ferry_fields["attempt"] = d.attempt;
  ferry_fields["sequence"] = d.sequence;
  ferry_fields["lease_expires"] = FormatRfc3339(d.lease_expires);
  ferry_fields["stored_at"] = FormatRfc3339(d.message.published_at);
  AppendMessageJson(std::move(ferry_fields), d.message, defaults, format, out);
}

void AppendStreamedEventJson(std::uint64_t sequence, const Message& message,
                             const EventDefaults& defaults, std::string& out) {
  boost::json::object ferry_fields;
  ferry_fields["id"] = message.id;
  ferry_fields["sequence"] = sequence;
  ferry_fields["stored_at"] = FormatRfc3339(message.published_at);
  AppendMessageJson(std::move(ferry_fields), message, defaults, MessageFormat::kFull, out);
}

void AppendDeadLetterJson(const DeadLetter& dead, const EventDefaults& defaults,
                          MessageFormat format, std::string& out) {
  boost::json::object ferry_fields;
  ferry_fields["id"] = dead.message.id;
  ferry_fields["sequence"] = dead.sequence;
  ferry_fields["stored_at"] = FormatRfc3339(dead.message.published_at);
  ferry_fields["attempts"] = dead.attempts;
  ferry_fields["reason"] = dead.reason;
  ferry_fields["dead_lettered_at"] = FormatRfc3339(dead.dead_lettered_at);
  AppendMessageJson(std::move(ferry_fields), dead.message, defaults, format, out);
}

void AddBinaryModeHeaders(const Delivery& d, const EventDefaults& defaults,
                          http::Headers& headers) {
  const Message& m = d.message;
  headers.Add("ce-specversion", "1.0");
  headers.Add("ce-id", m.id);
  headers.Add("ce-source", m.source.empty() ? defaults.source : m.source);
  headers.Add("ce-type", m.type.empty() ? defaults.type : m.type);
  if (!m.subject.empty()) headers.Add("ce-subject", m.subject);
  if (!m.key.empty()) headers.Add("ce-partitionkey", m.key);
  auto time = m.attributes.find("time");
  headers.Add("ce-time", time != m.attributes.end() ? time->second : FormatRfc3339(m.published_at));
  for (const auto& [k, v] : m.attributes) {
    if (!IsContextAttribute(k)) headers.Add("ce-" + k, v);
  }
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
