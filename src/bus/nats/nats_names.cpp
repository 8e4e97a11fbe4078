#include "bus/nats/nats_names.hpp"

#include <fmt/format.h>

namespace ferry::bus::nats {
namespace {

bool Plain(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string EscapeName(std::string_view name) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(name.size());
  for (char c : name) {
    if (Plain(c)) {
      out.push_back(c);
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out.push_back('_');
      out.push_back(kHex[byte >> 4]);
      out.push_back(kHex[byte & 0xf]);
    }
  }
  return out;
}

std::optional<std::string> UnescapeName(std::string_view escaped) {
  std::string out;
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    const char c = escaped[i];
    if (Plain(c)) {
      out.push_back(c);
      continue;
    }
    if (c != '_' || i + 2 >= escaped.size()) return std::nullopt;
    const int high = HexValue(escaped[i + 1]);
    const int low = HexValue(escaped[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    const char decoded = static_cast<char>(high * 16 + low);
    if (Plain(decoded)) return std::nullopt;  // EscapeName never escapes these
    out.push_back(decoded);
    i += 2;
  }
  return out;
}

std::string QueueStream(std::string_view queue) { return "FERRY_Q_" + EscapeName(queue); }
std::string QueueSubject(std::string_view queue) { return "ferry.q." + EscapeName(queue); }
std::string TopicStream(std::string_view topic) { return "FERRY_T_" + EscapeName(topic); }
std::string TopicSubjects(std::string_view topic) { return "ferry.t." + EscapeName(topic) + ".>"; }
std::string TopicEventSubject(std::string_view topic) {
  return "ferry.t." + EscapeName(topic) + ".e";
}
std::string TopicReplaySubject(std::string_view topic, std::string_view subscription) {
  return "ferry.t." + EscapeName(topic) + ".r." + EscapeName(subscription);
}
std::string SubscriptionConsumer(std::string_view subscription) { return EscapeName(subscription); }
std::string DeadLetterSubject(std::string_view topic, std::string_view name) {
  if (topic.empty()) return "ferry.dlq.q." + EscapeName(name);
  return "ferry.dlq.s." + EscapeName(topic) + "." + EscapeName(name);
}
std::string DeadLetterMsgId(std::string_view stream, std::uint64_t sequence) {
  return fmt::format("dlq:{}:{}", stream, sequence);
}

}  // namespace ferry::bus::nats
