#include "proxy/topic_stream.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <memory>
#include <vector>

#include "proxy/local_reply.hpp"
#include "proxy/push_framing.hpp"
#include "proxy/topic_feed.hpp"
#include "proxy/websocket.hpp"
#include "proxy/worker_state.hpp"
#include "runtime/stream.hpp"
#include "runtime/task_group.hpp"

namespace ferry::proxy {
namespace {

using SteadyClock = std::chrono::steady_clock;
using SystemClock = std::chrono::system_clock;

// The first answer of the feed (a post to the bus thread and back) comes within this, or the
// stream is refused with 503.
constexpr auto kSubscribeTimeout = std::chrono::seconds(5);
// A stream Ferry ends (drain, lifetime, token expiry) gets this long to write its last bytes.
constexpr auto kEndGrace = std::chrono::seconds(2);
// One write gathers at most this many queued buffers.
constexpr std::size_t kMaxPieces = 64;
// A WebSocket client's frames: control frames are at most 125 bytes (RFC 6455 5.5); data
// frames (which a topic stream ignores) are read and dropped in pieces of this.
constexpr std::size_t kReadBytes = 16 * 1024;

const std::shared_ptr<const std::string>& SseHeartbeat() {
  static const auto kBeat = std::make_shared<const std::string>(":\n\n");
  return kBeat;
}
const std::shared_ptr<const std::string>& WsPing() {
  static const auto kPing =
      std::make_shared<const std::string>(WebSocketFrame(WsOpcode::kPing, {}));
  return kPing;
}

// The connection's side of the feed, and what its writer, reader and watchdog share.
class StreamClient final : public TopicClient {
 public:
  StreamClient(asio::any_io_executor executor, bool websocket, std::size_t limit)
      : wake_writer(executor), wake_main(executor), websocket_(websocket), limit_(limit) {}

  void OnLive(const PushBatch& batch) override {
    if (catching_up || stop) return;  // the next catch-up has these
    for (const PushEvent& event : *batch) {
      if (event.sequence <= at) continue;
      Queue(websocket_ ? event.ws : event.sse, true);
      at = event.sequence;
    }
    wake_writer.cancel();
  }
  void OnCatchUp(Result<CatchUp> answer) override {
    answered = true;
    asked = false;
    if (!answer) {
      failure = answer.error();
    } else {
      if (answer->gap) Queue(websocket_ ? answer->gap->ws : answer->gap->sse, true);
      for (const PushEvent& event : *answer->events) {
        Queue(websocket_ ? event.ws : event.sse, true);
      }
      at = answer->last;
      catching_up = answer->more;
    }
    wake_writer.cancel();
    wake_main.cancel();
  }

  void Queue(std::shared_ptr<const std::string> buffer, bool event) {
    queued_bytes += buffer->size();
    queue.push_back({std::move(buffer), event});
    if (queued_bytes > limit_ && !overflow) {
      overflow = true;
      wake_main.cancel();
    }
  }

  struct Queued {
    std::shared_ptr<const std::string> buffer;
    bool event = false;  // an event (counted), not a heartbeat or a control frame
  };
  std::deque<Queued> queue;
  std::size_t queued_bytes = 0;
  std::uint64_t at = 0;     // the sequence of the newest event queued
  bool answered = false;    // the first catch-up came
  bool catching_up = true;  // live events are ignored until the catch-up reached them
  bool asked = false;       // a catch-up round is on its way
  bool overflow = false;    // more than the limit queued: cut
  bool stop = false;        // ending: the writer writes what is queued and returns
  bool writer_done = false;
  bool write_failed = false;
  bool client_closed = false;  // WebSocket: the client closed or went
  bool drain = false;
  std::optional<Error> failure;
  std::uint64_t events_written = 0;
  std::uint64_t bytes_written = 0;
  SteadyClock::time_point last_write = SteadyClock::now();
  asio::steady_timer wake_writer;  // cancelled when there is something to write
  asio::steady_timer wake_main;    // cancelled when the watchdog must look

 private:
  bool websocket_;
  std::size_t limit_;
};

struct Session {
  TopicStreamArgs& args;
  std::shared_ptr<StreamClient> client;
  TopicFeeds* feeds = nullptr;
  TopicFeeds::PostFn post;
  runtime::Stream* ws = nullptr;  // the upgraded connection, for a WebSocket
  std::string_view ws_early;
};

Task<bool> WritePieces(Session& s, std::span<const std::string_view> pieces) {
  if (s.ws == nullptr) {
    const bool ok = co_await s.args.response.WriteBody(pieces);
    co_return ok;
  }
  std::vector<asio::const_buffer> buffers;
  buffers.reserve(pieces.size());
  for (std::string_view p : pieces) buffers.emplace_back(p.data(), p.size());
  auto [ec, n] = co_await asio::async_write(*s.ws, buffers, kNoThrow);
  co_return !ec;
}

Task<void> WriteLoop(Session& s) {
  StreamClient& c = *s.client;
  std::vector<std::shared_ptr<const std::string>> held;
  std::vector<std::string_view> pieces;
  while (true) {
    if (c.queue.empty()) {
      if (c.stop) break;
      if (c.catching_up && c.answered && !c.asked) {  // the next round, once this one is out
        c.asked = true;
        s.feeds->CatchUpFrom(s.args.route.topic, c.at, s.args.route.push.buffer_bytes / 2, s.client,
                             s.post);
      }
      c.wake_writer.expires_at(SteadyClock::time_point::max());
      auto [ec] = co_await c.wake_writer.async_wait(kNoThrow);
      if (ec && ec != asio::error::operation_aborted) break;
      if (c.writer_done) break;  // (cancelled by the group)
      continue;
    }
    held.clear();
    pieces.clear();
    std::uint64_t events = 0;
    while (!c.queue.empty() && pieces.size() < kMaxPieces) {
      StreamClient::Queued& q = c.queue.front();
      c.queued_bytes -= q.buffer->size();
      events += q.event ? 1 : 0;
      pieces.emplace_back(*q.buffer);
      held.push_back(std::move(q.buffer));
      c.queue.pop_front();
    }
    const bool ok = co_await WritePieces(s, pieces);
    if (!ok) {
      c.write_failed = true;
      break;
    }
    for (std::string_view p : pieces) c.bytes_written += p.size();
    c.events_written += events;
    s.args.series.push_events->Add(s.args.worker.slot(), events);
    c.last_write = SteadyClock::now();
  }
  c.writer_done = true;
  c.wake_main.cancel();
}

// Reads from the client until `in` holds `want` bytes. false: it closed or failed.
Task<bool> Fill(runtime::Stream& stream, std::string& in, std::vector<char>& buffer,
                std::size_t want) {
  while (in.size() < want) {
    auto [ec, n] = co_await stream.async_read_some(asio::buffer(buffer), kNoThrow);
    if (ec) co_return false;
    in.append(buffer.data(), n);
  }
  co_return true;
}

// A WebSocket client's frames: a ping is answered, a close echoed (the stream then ends),
// anything else read and dropped. Frames must be masked (RFC 6455 5.1).
Task<void> ReadLoop(Session& s) {
  StreamClient& c = *s.client;
  std::string in(s.ws_early);
  std::vector<char> buffer(kReadBytes);
  runtime::Stream& ws = *s.ws;
  const auto fill = [&](std::size_t want) { return Fill(ws, in, buffer, want); };
  while (true) {
    if (!co_await fill(2)) break;
    const auto b0 = static_cast<std::uint8_t>(in[0]);
    const auto b1 = static_cast<std::uint8_t>(in[1]);
    const std::uint8_t opcode = b0 & 0x0F;
    if ((b1 & 0x80) == 0) break;  // unmasked: a protocol error; close
    std::uint64_t length = b1 & 0x7F;
    std::size_t header = 2;
    if (length == 126 || length == 127) {
      const std::size_t extra = length == 126 ? 2 : 8;
      if (!co_await fill(2 + extra)) break;
      length = 0;
      for (std::size_t i = 0; i < extra; ++i) {
        length = (length << 8) | static_cast<std::uint8_t>(in[2 + i]);
      }
      header += extra;
    }
    header += 4;  // the mask
    const bool control = (opcode & 0x08) != 0;
    if (control && length > 125) break;
    if (!co_await fill(header)) break;
    const std::string mask = in.substr(header - 4, 4);
    in.erase(0, header);
    if (!control) {  // dropped as it comes
      std::uint64_t left = length;
      while (left > 0) {
        if (in.empty()) {
          const bool more = co_await fill(1);
          if (!more) break;
        }
        const std::size_t take = std::min<std::uint64_t>(left, in.size());
        in.erase(0, take);
        left -= take;
      }
      if (left > 0) break;
      continue;
    }
    if (!co_await fill(length)) break;
    std::string payload = in.substr(0, length);
    in.erase(0, length);
    for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= mask[i % 4];
    if (opcode == static_cast<std::uint8_t>(WsOpcode::kPing)) {
      c.Queue(std::make_shared<const std::string>(WebSocketFrame(WsOpcode::kPong, payload)), false);
      c.wake_writer.cancel();
    } else if (opcode == static_cast<std::uint8_t>(WsOpcode::kClose)) {
      c.queue.clear();
      c.queued_bytes = 0;
      c.Queue(std::make_shared<const std::string>(WebSocketFrame(WsOpcode::kClose, payload)),
              false);
      break;
    }
  }
  c.client_closed = true;
  c.stop = true;
  c.wake_writer.cancel();
  c.wake_main.cancel();
}

std::optional<std::uint64_t> ParseSequence(std::string_view text) {
  std::uint64_t value = 0;
  if (text.empty() || text.size() > 20) return std::nullopt;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// `last_event_id` of the query (what a page that cannot set headers passes), else nullopt.
std::optional<std::string_view> QueryLastEventId(std::string_view target) {
  const std::size_t q = target.find('?');
  if (q == std::string_view::npos) return std::nullopt;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.starts_with("last_event_id=")) return pair.substr(14);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

TopicStreamResult Refused(ErrorCode code, std::string_view reply_code, std::string message) {
  TopicStreamResult result;
  result.error.emplace(code, std::move(message));
  result.error_code = reply_code;
  return result;
}

}  // namespace

Task<TopicStreamResult> ServeTopic(TopicStreamArgs& args) {
  const config::Route& route = args.route;
  const http::RequestHead& req = args.request.head();
  const bool websocket = http::EqualsIgnoreCase(args.request.upgrade(), "websocket");
  if (req.method != "GET") {
    co_return Refused(ErrorCode::kInvalidArgument, reply::kBadRequest,
                      fmt::format("topic route {} takes GET, not {}", route.name, req.method));
  }
  if (!args.request.upgrade().empty() && !websocket) {
    co_return Refused(ErrorCode::kInvalidArgument, reply::kBadRequest,
                      "a topic route upgrades to websocket only");
  }
  std::optional<std::uint64_t> after;
  std::optional<std::string_view> resume = req.headers.Get("last-event-id");
  if (!resume || resume->empty()) resume = QueryLastEventId(req.target);
  if (resume && !resume->empty()) {
    after = ParseSequence(*resume);
    if (!after) {
      co_return Refused(ErrorCode::kInvalidArgument, reply::kBadRequest,
                        "Last-Event-ID must be an event id this route sent (a sequence number)");
    }
  }
  const std::string key(req.headers.Get("sec-websocket-key").value_or(""));
  if (websocket && (key.empty() || req.headers.Get("sec-websocket-version") != "13")) {
    co_return Refused(ErrorCode::kInvalidArgument, reply::kBadRequest,
                      "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13");
  }
  Session s{args, nullptr};
  s.feeds = args.worker.topic_feeds();
  if (s.feeds == nullptr) {
    co_return Refused(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
                      "topic " + route.topic + ": the bus is not running on this node");
  }
  const asio::any_io_executor executor = args.worker.io().get_executor();
  s.client = std::make_shared<StreamClient>(executor, websocket, route.push.buffer_bytes);
  s.post = [executor](std::function<void()> task) { asio::post(executor, std::move(task)); };
  StreamClient& c = *s.client;
  s.feeds->Subscribe(route.topic, after, route.push.buffer_bytes / 2, s.client, s.post,
                     &args.worker);
  c.wake_main.expires_after(kSubscribeTimeout);
  while (!c.answered) {
    auto [ec] = co_await c.wake_main.async_wait(kNoThrow);
    if (!ec) break;  // timed out
  }
  if (!c.answered) {
    co_return Refused(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
                      "topic " + route.topic + ": the bus did not answer");
  }
  TopicStreamResult result;
  if (c.failure) {
    if (c.failure->code() != ErrorCode::kNotFound) {
      co_return Refused(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
                        "topic " + route.topic + ": " + c.failure->message());
    }
    // The topic is gone: 204 tells an EventSource not to reconnect.
    server::ResponseHead head;
    head.status = 204;
    args.decorate(204, head.headers);
    co_await args.response.Send(head, {});
    result.status = 204;
    result.ended = "topic_gone";
    co_return result;
  }

  // The head goes out now, before any event.
  server::ResponseHead head;
  if (websocket) {
    head.status = 101;
    head.headers.Set("sec-websocket-accept", WebSocketAccept(key));
    args.decorate(101, head.headers);
    const server::Upgraded upgraded = co_await args.response.SwitchProtocols(head);
    if (upgraded.stream == nullptr) co_return result;  // the client went
    s.ws = upgraded.stream;
    s.ws_early = upgraded.early;
    result.status = 101;
  } else {
    head.status = 200;
    head.headers.Set("content-type", "text/event-stream");
    head.headers.Set("cache-control", "no-cache");
    head.headers.Set("x-accel-buffering", "no");  // a buffering proxy in front passes it on
    args.decorate(200, head.headers);
    args.response.WriteHead(head, std::nullopt);
    args.response.LongLived();
    result.status = 200;
    auto retry = std::make_shared<const std::string>(fmt::format(
        "retry: {}\n\n",
        std::chrono::duration_cast<std::chrono::milliseconds>(route.push.retry).count()));
    c.queued_bytes += retry->size();
    c.queue.push_front({std::move(retry), false});
  }
  args.series.push_connections->Add(args.worker.slot());
  args.series.push_active->Add(args.worker.slot(), 1);
  const std::uint64_t drain_hook = args.worker.AddDrainHook([client = s.client] {
    client->drain = true;
    client->wake_main.cancel();
  });
  if (args.worker.draining()) c.drain = true;

  runtime::TaskGroup group(executor);
  group.Spawn(WriteLoop(s));
  if (s.ws != nullptr) group.Spawn(ReadLoop(s));
  const auto start = SteadyClock::now();
  const Duration heartbeat = route.push.heartbeat;
  std::optional<SteadyClock::time_point> expires_at;
  if (args.expires) {
    expires_at = start + std::chrono::duration_cast<SteadyClock::duration>(*args.expires -
                                                                           SystemClock::now());
  }
  bool abort = false;
  std::optional<std::uint16_t> close_code;
  while (true) {
    const auto now = SteadyClock::now();
    if (c.overflow) {
      result.ended = "slow_client";
      args.series.push_slow_disconnects->Add(args.worker.slot());
      abort = true;
      break;
    }
    if (c.writer_done || c.client_closed) break;  // the client went (or closed)
    if (c.failure) {
      result.ended = "topic_gone";
      close_code = 1011;
      break;
    }
    if (c.drain) {
      result.ended = "drain";
      close_code = 1001;
      break;
    }
    if (route.max_stream_duration.count() > 0 && now >= start + route.max_stream_duration) {
      result.ended = "max_stream_duration";
      close_code = 1001;
      break;
    }
    if (expires_at && now >= *expires_at) {
      result.ended = "token_expired";
      close_code = 1008;
      break;
    }
    if (now >= c.last_write + heartbeat && c.queue.empty()) {
      c.Queue(s.ws != nullptr ? WsPing() : SseHeartbeat(), false);
      c.last_write = now;  // (the next beat counts from here even if the write waits)
      c.wake_writer.cancel();
    }
    auto next = c.last_write + heartbeat;
    if (route.max_stream_duration.count() > 0) {
      next = std::min(next, start + route.max_stream_duration);
    }
    if (expires_at) next = std::min(next, *expires_at);
    c.wake_main.expires_at(std::max(next, now + std::chrono::milliseconds(1)));
    co_await c.wake_main.async_wait(kNoThrow);
  }
  args.worker.RemoveDrainHook(drain_hook);
  if (!abort && !c.writer_done) {
    // Ferry ends it: what is queued is dropped (the client resumes from its last id), a
    // WebSocket gets its close frame, and the writer gets a moment to finish. (A client's
    // close: the echo queued is what is left to write.)
    if (!c.client_closed) {
      c.queue.clear();
      c.queued_bytes = 0;
    }
    if (s.ws != nullptr && close_code && !c.client_closed) {
      c.Queue(std::make_shared<const std::string>(WebSocketClose(*close_code, result.ended)),
              false);
    }
    c.stop = true;
    c.wake_writer.cancel();
    c.wake_main.expires_after(kEndGrace);
    while (!c.writer_done) {
      auto [ec] = co_await c.wake_main.async_wait(kNoThrow);
      if (!ec) break;
    }
    abort = !c.writer_done;
  }
  if (abort || c.write_failed) {
    c.writer_done = true;
    group.CancelAll();
    if (s.ws != nullptr) {
      error_code ignored;
      s.ws->cancel(ignored);
    } else {
      args.response.Abort();
    }
  } else if (s.ws == nullptr) {
    co_await args.response.Finish();
  } else {
    s.ws->ShutdownSend();
    error_code ignored;
    s.ws->cancel(ignored);  // the reader
  }
  c.stop = true;
  c.wake_writer.cancel();
  co_await group.Wait();
  args.series.push_active->Add(args.worker.slot(), -1);
  result.events = c.events_written;
  result.bytes_sent = c.bytes_written;
  co_return result;
}

}  // namespace ferry::proxy
