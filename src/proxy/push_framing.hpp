// How a topic route frames what it streams (docs/realtime.md): Server-Sent Events (the WHATWG
// HTML "server-sent events" format) and WebSocket frames (RFC 6455, server to client:
// unmasked, one frame per message). Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/topic_feed.hpp"

namespace ferry::proxy {

// One SSE event: `id: N`, an `event:` line when `event` is not empty, `data` as one `data:`
// line per line of it (CR, LF and CRLF all end a line, as the format reads them), and the
// blank line that dispatches it.
std::string SseEvent(std::uint64_t id, std::string_view event, std::string_view data);

enum class WsOpcode : std::uint8_t { kText = 0x1, kClose = 0x8, kPing = 0x9, kPong = 0xA };
// One final, unmasked frame.
std::string WebSocketFrame(WsOpcode opcode, std::string_view payload);
// A close frame with its status code and reason (at most 123 bytes).
std::string WebSocketClose(std::uint16_t code, std::string_view reason);

// An event of the topic: `json` (the event as a bus pull renders it) framed for both.
// SSE: `id: <sequence>` and `data: <json>`. WebSocket: a text frame with
// {"type":"event","id":<sequence>,"data":<json>}.
PushEvent MakePushEvent(std::uint64_t sequence, std::string_view json);
// The notice that events after `after` and before `first` are gone (retention): SSE
// `event: gap` with `id: first-1` (a reconnect resumes at `first`) and data
// {"after":A,"first":F}; WebSocket {"type":"gap","id":F-1,"after":A,"first":F}.
PushEvent MakeGapEvent(std::uint64_t after, std::uint64_t first);

}  // namespace ferry::proxy
