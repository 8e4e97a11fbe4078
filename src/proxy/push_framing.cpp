#include "proxy/push_framing.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace ferry::proxy {

std::string SseEvent(std::uint64_t id, std::string_view event, std::string_view data) {
  std::string out;
  out.reserve(data.size() + 32);
  fmt::format_to(std::back_inserter(out), "id: {}\n", id);
  if (!event.empty()) {
    out.append("event: ");
    out.append(event);
    out.push_back('\n');
  }
  std::size_t at = 0;
  for (;;) {
    const std::size_t end = data.find_first_of("\r\n", at);
    out.append("data: ");
    out.append(data.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at));
    out.push_back('\n');
    if (end == std::string_view::npos) break;
    at = end + 1;
    if (data[end] == '\r' && at < data.size() && data[at] == '\n') ++at;  // CRLF is one end
    if (at == data.size()) break;  // a trailing line end adds no empty line
  }
  out.push_back('\n');
  return out;
}

std::string WebSocketFrame(WsOpcode opcode, std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 10);
  out.push_back(static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode)));  // FIN
  const std::uint64_t n = payload.size();
  if (n < 126) {
    out.push_back(static_cast<char>(n));
  } else if (n <= 0xFFFF) {
    out.push_back(static_cast<char>(126));
    out.push_back(static_cast<char>(n >> 8));
    out.push_back(static_cast<char>(n & 0xFF));
  } else {
    out.push_back(static_cast<char>(127));
    for (int shift = 56; shift >= 0; shift -= 8) {
      out.push_back(static_cast<char>((n >> shift) & 0xFF));
    }
  }
  out.append(payload);
  return out;
}

std::string WebSocketClose(std::uint16_t code, std::string_view reason) {
  std::string payload;
  payload.push_back(static_cast<char>(code >> 8));
  payload.push_back(static_cast<char>(code & 0xFF));
  payload.append(reason.substr(0, std::min<std::size_t>(reason.size(), 123)));
  return WebSocketFrame(WsOpcode::kClose, payload);
}

PushEvent MakePushEvent(std::uint64_t sequence, std::string_view json) {
  PushEvent event;
  event.sequence = sequence;
  event.sse = std::make_shared<const std::string>(SseEvent(sequence, {}, json));
  std::string envelope = fmt::format("{{\"type\":\"event\",\"id\":{},\"data\":", sequence);
  envelope.append(json);
  envelope.push_back('}');
  event.ws = std::make_shared<const std::string>(WebSocketFrame(WsOpcode::kText, envelope));
  return event;
}

PushEvent MakeGapEvent(std::uint64_t after, std::uint64_t first) {
  PushEvent event;
  event.sequence = first - 1;
  const std::string data = fmt::format("{{\"after\":{},\"first\":{}}}", after, first);
  event.sse = std::make_shared<const std::string>(SseEvent(first - 1, "gap", data));
  event.ws = std::make_shared<const std::string>(WebSocketFrame(
      WsOpcode::kText, fmt::format("{{\"type\":\"gap\",\"id\":{},\"after\":{},\"first\":{}}}",
                                   first - 1, after, first)));
  return event;
}

}  // namespace ferry::proxy
