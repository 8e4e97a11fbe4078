#include "upstream/http2_connection.hpp"

#include <fmt/format.h>
#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "http/trailers.hpp"
#include "runtime/task_group.hpp"

namespace ferry::upstream {

namespace {

using SteadyClock = std::chrono::steady_clock;

// Frames are written in batches of about this much (one write call per batch).
constexpr std::size_t kWriteBatch = 64 * 1024;
constexpr std::size_t kReadSize = 32 * 1024;

nghttp2_nv Field(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

// --- Waker

Waker::Waker(const asio::any_io_executor& executor)
    : timer_(executor, SteadyClock::time_point::max()) {}

void Waker::Wake() {
  woken_ = true;
  timer_.cancel();
}

void Waker::cancel(error_code& /*ignored*/) { timer_.cancel(); }

Task<void> Waker::Wait() { return WaitUntil(SteadyClock::time_point::max()); }

Task<void> Waker::WaitUntil(SteadyClock::time_point until) {
  if (!woken_) {
    timer_.expires_at(until);
    co_await timer_.async_wait(kNoThrow);
  }
  woken_ = false;
}

// --- nghttp2's callbacks

struct Http2Callbacks {
  static Http2Connection& Of(void* user_data) { return *static_cast<Http2Connection*>(user_data); }

  static int OnHeader(nghttp2_session* /*session*/, const nghttp2_frame* frame,
                      const std::uint8_t* name, std::size_t namelen, const std::uint8_t* value,
                      std::size_t valuelen, std::uint8_t /*flags*/, void* user_data) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    Http2StreamState* state = Of(user_data).StateOf(frame->hd.stream_id);
    if (state == nullptr) return 0;
    const std::string_view n(reinterpret_cast<const char*>(name), namelen);
    const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
    if (state->head_done) {  // trailers: a HEADERS after the final head
      if (state->trailers.size() < http::kMaxTrailerFields &&
          state->trailers.arena_bytes() + namelen + valuelen <= http::kMaxTrailerBytes) {
        http::AddTrailer(state->trailers, n, v);
      }
      return 0;
    }
    if (n == ":status") {
      int status = 0;
      for (char c : v) status = status * 10 + (c - '0');  // nghttp2 checked it: 3 digits
      state->status = status;
    } else if (!n.empty() && n[0] != ':') {
      state->headers.Add(std::string(n), std::string(v));
    }
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user_data) {
    Http2Connection& c = Of(user_data);
    c.last_frame_ = SteadyClock::now();
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
          c.got_settings_ = true;
          c.settings_.Wake();
        }
        break;
      case NGHTTP2_GOAWAY:
        // No new streams; those above last_stream_id nghttp2 closes as REFUSED_STREAM.
        c.goaway_ = true;
        spdlog::debug("upstream http2: GOAWAY (last stream {}, code {})",
                      frame->goaway.last_stream_id, frame->goaway.error_code);
        break;
      case NGHTTP2_PING:
        if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0) c.ping_outstanding_ = false;
        break;
      case NGHTTP2_HEADERS:
      case NGHTTP2_DATA: {
        Http2StreamState* state = c.StateOf(frame->hd.stream_id);
        if (state == nullptr) break;
        if (frame->hd.type == NGHTTP2_HEADERS && !state->head_done) {
          if (state->status >= 200) {
            state->head_done = true;
          } else {  // an interim (1xx) head: skipped
            state->status = 0;
            state->headers = http::Headers();
          }
        }
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) state->end_stream = true;
        state->waker.Wake();
        break;
      }
      default:
        break;
    }
    (void)session;
    return 0;
  }

  static int OnDataChunk(nghttp2_session* session, std::uint8_t /*flags*/, std::int32_t stream_id,
                         const std::uint8_t* data, std::size_t len, void* user_data) {
    Http2StreamState* state = Of(user_data).StateOf(stream_id);
    if (state == nullptr || state->cancelled) {
      nghttp2_session_consume(session, stream_id, len);  // no reader: its window reopens now
      return 0;
    }
    state->in.append(reinterpret_cast<const char*>(data), len);
    state->waker.Wake();
    return 0;
  }

  static int OnStreamClose(nghttp2_session* /*session*/, std::int32_t stream_id,
                           std::uint32_t error_code, void* user_data) {
    Http2Connection& c = Of(user_data);
    auto it = c.streams_.find(stream_id);
    if (it == c.streams_.end()) return 0;
    Http2StreamState& state = *it->second;
    state.closed = true;
    state.error_code = error_code;
    // Never processed: the server refused it, or it was above a GOAWAY's last-stream-id
    // (nghttp2 closes those with REFUSED_STREAM too).
    state.refused = error_code == NGHTTP2_REFUSED_STREAM && !state.head_done;
    state.waker.Wake();
    c.streams_.erase(it);
    c.KickWriter();  // a slot is free: queued streams may go
    return 0;
  }

  // Ends the body: with its trailers as a HEADERS frame (the DATA frame then does not end the
  // stream), else with END_STREAM on the DATA.
  static void EndBody(nghttp2_session* session, Http2StreamState& state, std::uint32_t* flags) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (state.out_trailers.empty()) return;
    std::vector<nghttp2_nv> nva;
    for (const auto& [name, value] : state.out_trailers) nva.push_back(Field(name, value));
    if (nghttp2_submit_trailer(session, state.id, nva.data(), nva.size()) == 0) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }

  static ssize_t ReadBody(nghttp2_session* session, std::int32_t /*stream_id*/, std::uint8_t* buf,
                          std::size_t length, std::uint32_t* data_flags,
                          nghttp2_data_source* source, void* /*user_data*/) {
    auto& state = *static_cast<Http2StreamState*>(source->ptr);
    const std::size_t left = state.out.size() - state.out_offset;
    if (left > 0) {
      const std::size_t n = std::min(length, left);
      std::memcpy(buf, state.out.data() + state.out_offset, n);
      state.out_offset += n;
      if (state.out_offset == state.out.size()) {
        state.out.clear();
        state.out_offset = 0;
        state.waker.Wake();  // the exchange may read the next piece
        if (state.out_eof) EndBody(session, state, data_flags);
      }
      return static_cast<ssize_t>(n);
    }
    if (state.out_eof) {
      EndBody(session, state, data_flags);
      return 0;
    }
    state.out_deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
};

// --- Http2Connection

Http2Connection::Http2Connection(asio::io_context& io, runtime::Stream& stream,
                                 const Http2Options& options)
    : stream_(stream),
      options_(options),
      writer_(io.get_executor()),
      settings_(io.get_executor()),
      last_frame_(SteadyClock::now()) {}

Http2Connection::~Http2Connection() {
  if (session_ != nullptr) nghttp2_session_del(session_);
}

Result<std::shared_ptr<Http2Connection>> Http2Connection::Start(asio::io_context& io,
                                                                const StreamPool::Lease& lease,
                                                                const Http2Options& options,
                                                                runtime::TaskGroup& tasks) {
  std::shared_ptr<Http2Connection> c(new Http2Connection(io, lease.stream(), options));
  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_option* option = nullptr;
  if (nghttp2_session_callbacks_new(&callbacks) != 0 || nghttp2_option_new(&option) != 0) {
    if (callbacks != nullptr) nghttp2_session_callbacks_del(callbacks);
    return Fail(ErrorCode::kInternal, "nghttp2: out of memory");
  }
  nghttp2_session_callbacks_set_on_header_callback(callbacks, Http2Callbacks::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, Http2Callbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, Http2Callbacks::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, Http2Callbacks::OnStreamClose);
  // The reader's pace is the flow control: a window reopens as the body is taken.
  nghttp2_option_set_no_auto_window_update(option, 1);
  // Until the server's SETTINGS say otherwise (RFC 9113 recommends at least 100).
  nghttp2_option_set_peer_max_concurrent_streams(option, options.max_streams);
  const int made = nghttp2_session_client_new2(&c->session_, callbacks, c.get(), option);
  nghttp2_session_callbacks_del(callbacks);
  nghttp2_option_del(option);
  if (made != 0) return Fail(ErrorCode::kInternal, nghttp2_strerror(made));
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, options.stream_window},
  };
  nghttp2_submit_settings(c->session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(c->session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(options.connection_window));
  tasks.Spawn(ReadLoop(c, lease.KeepAlive()));
  tasks.Spawn(WriteLoop(c, lease.KeepAlive()));
  return c;
}

Task<Result<void>> Http2Connection::Handshake(TimePoint deadline) {
  const std::shared_ptr<Http2Connection> self = shared_from_this();
  while (!got_settings_) {
    if (failure_) co_return tl::unexpected(*failure_);
    if (SteadyClock::now() >= deadline) {
      FailConnection(
          Error(ErrorCode::kConnectFailed, "no HTTP/2 SETTINGS from the upstream in time"));
      co_return tl::unexpected(*failure_);
    }
    co_await settings_.WaitUntil(deadline);
  }
  co_return Ok();
}

std::uint32_t Http2Connection::capacity() const {
  const std::uint32_t peer =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return std::max<std::uint32_t>(1, std::min(options_.max_streams, peer));
}

Http2StreamState* Http2Connection::StateOf(std::int32_t stream_id) const {
  auto it = streams_.find(stream_id);
  return it == streams_.end() ? nullptr : it->second.get();
}

Result<void> Http2Connection::Open(const std::shared_ptr<Http2StreamState>& state,
                                   std::string_view method, std::string_view target,
                                   std::string_view authority,
                                   const std::vector<std::pair<std::string, std::string>>& fields,
                                   bool has_body) {
  if (!accepting()) {
    state->closed = true;
    state->refused = true;  // never sent: another connection takes it
    return Fail(ErrorCode::kConnectionClosed, "the HTTP/2 connection takes no new stream");
  }
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size() + 4);
  nva.push_back(Field(":method", method));
  nva.push_back(Field(":scheme", options_.tls ? "https" : "http"));
  nva.push_back(Field(":authority", authority));
  nva.push_back(Field(":path", target));
  for (const auto& [name, value] : fields) nva.push_back(Field(name, value));
  nghttp2_data_provider body{};
  body.source.ptr = state.get();
  body.read_callback = Http2Callbacks::ReadBody;
  const std::int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                                 has_body ? &body : nullptr, state.get());
  if (id < 0) {
    if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE) exhausted_ = true;
    state->closed = true;
    state->refused = id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE;
    return Fail(state->refused ? ErrorCode::kConnectionClosed : ErrorCode::kUpstreamProtocol,
                fmt::format("HTTP/2 request not sent: {}", nghttp2_strerror(id)));
  }
  state->id = id;
  streams_.emplace(id, state);
  ++streams_opened_;
  KickWriter();
  return Ok();
}

void Http2Connection::ResumeBody(Http2StreamState& state) {
  if (state.closed || failure_) return;
  if (state.out_deferred) {
    state.out_deferred = false;
    nghttp2_session_resume_data(session_, state.id);
  }
  KickWriter();
}

void Http2Connection::Consume(const Http2StreamState& state, std::size_t n) {
  if (n == 0 || failure_) return;
  // (After the stream closed this reopens the connection's window alone.)
  nghttp2_session_consume(session_, state.id, n);
  KickWriter();
}

void Http2Connection::Cancel(Http2StreamState& state) {
  if (failure_ || state.id < 0) return;
  const std::size_t unread = state.in.size();
  state.in.clear();
  if (unread > 0) nghttp2_session_consume(session_, state.id, unread);
  if (!state.closed && !state.cancelled) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, state.id, NGHTTP2_CANCEL);
  }
  state.cancelled = true;
  KickWriter();
}

void Http2Connection::FailConnection(Error error) {
  if (failure_) return;
  failure_ = error;
  spdlog::debug("upstream http2: connection failed: {}", error.message());
  for (auto& [id, state] : streams_) {
    state->closed = true;
    state->failure = error;
    state->waker.Wake();
  }
  streams_.clear();
  settings_.Wake();
  writer_.Wake();
  stream_.Close();
}

Task<void> Http2Connection::ReadLoop(std::shared_ptr<Http2Connection> self,
                                     std::shared_ptr<void> keep) {
  std::vector<std::uint8_t> buffer(kReadSize);
  for (;;) {
    auto [ec, n] = co_await self->stream_.async_read_some(asio::buffer(buffer), kNoThrow);
    if (self->failure_) break;
    if (ec) {
      self->FailConnection(
          ec == asio::error::eof
              ? Error(ErrorCode::kConnectionClosed, "the upstream closed the connection")
              : Error(ErrorCode::kConnectionClosed,
                      fmt::format("reading from the upstream: {}", ec.message())));
      break;
    }
    const auto fed = nghttp2_session_mem_recv(self->session_, buffer.data(), n);
    if (fed < 0) {
      self->FailConnection(
          Error(ErrorCode::kUpstreamProtocol,
                fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(fed)))));
      break;
    }
    self->KickWriter();  // SETTINGS and PING acks, window updates
  }
  keep.reset();
}

Task<void> Http2Connection::WriteLoop(std::shared_ptr<Http2Connection> self,
                                      std::shared_ptr<void> keep) {
  std::string out;
  TimePoint ping_sent{};
  for (;;) {
    if (self->failure_) break;
    out.clear();
    for (;;) {
      const std::uint8_t* data = nullptr;
      const auto n = nghttp2_session_mem_send(self->session_, &data);
      if (n < 0) {
        self->FailConnection(
            Error(ErrorCode::kUpstreamProtocol,
                  fmt::format("HTTP/2: {}", nghttp2_strerror(static_cast<int>(n)))));
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      if (out.size() >= kWriteBatch) break;
    }
    if (self->failure_) break;
    if (!out.empty()) {
      auto [ec, written] = co_await asio::async_write(self->stream_, asio::buffer(out), kNoThrow);
      if (ec) {
        self->FailConnection(Error(ErrorCode::kConnectionClosed,
                                   fmt::format("writing to the upstream: {}", ec.message())));
        break;
      }
      continue;
    }
    if (self->goaway_ && self->streams_.empty()) {
      self->FailConnection(Error(ErrorCode::kConnectionClosed, "the upstream sent GOAWAY"));
      break;
    }
    const Duration interval = self->options_.keepalive_interval;
    if (interval <= Duration::zero()) {
      co_await self->writer_.Wait();
      continue;
    }
    // Keep-alive: a PING once the connection was quiet (no frame received) for an interval;
    // one still unanswered an interval later ends the connection.
    const TimePoint quiet_since = std::max(self->last_frame_, ping_sent);
    const TimePoint due = quiet_since + interval;
    if (SteadyClock::now() >= due) {
      if (self->ping_outstanding_) {
        self->FailConnection(
            Error(ErrorCode::kConnectionClosed, "the upstream did not answer a PING"));
        break;
      }
      nghttp2_submit_ping(self->session_, NGHTTP2_FLAG_NONE, nullptr);
      self->ping_outstanding_ = true;
      ping_sent = SteadyClock::now();
      continue;
    }
    co_await self->writer_.WaitUntil(due);
  }
  keep.reset();
}

}  // namespace ferry::upstream
