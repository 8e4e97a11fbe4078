#include "server/http2_connection.hpp"

#include <nghttp2/nghttp2.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <vector>

#include "http/headers.hpp"
#include "http/serializer.hpp"
#include "http/trailers.hpp"
#include "runtime/deadline.hpp"
#include "runtime/task_group.hpp"
#include "server/server_state.hpp"

namespace ferry::server {

namespace {

using Clock = std::chrono::steady_clock;

// Response bytes a stream buffers ahead of the client's window before WriteBody waits.
constexpr std::size_t kStreamOutLimit = 64 * 1024;
// What one socket write gathers from nghttp2's frames.
constexpr std::size_t kWriteBatch = 64 * 1024;
constexpr std::size_t kReadBuffer = 16 * 1024;
// After the last stream or on an error: how long the final frames (GOAWAY) may take to go out.
constexpr auto kFlushGrace = std::chrono::seconds(1);

bool IsConnectionSpecific(std::string_view name) {
  for (std::string_view h : {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                             "upgrade", "te", "trailer", "http2-settings"}) {
    if (http::EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

std::string_view View(const std::uint8_t* p, std::size_t n) {
  return {reinterpret_cast<const char*>(p), n};
}

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<std::uint8_t*>(const_cast<char*>(name.data())),
                    reinterpret_cast<std::uint8_t*>(const_cast<char*>(value.data())), name.size(),
                    value.size(), NGHTTP2_NV_FLAG_NONE};
}

}  // namespace

PrefaceMatch MatchPreface(std::string_view first_bytes) {
  const std::size_t n = std::min(first_bytes.size(), kHttp2Preface.size());
  if (first_bytes.substr(0, n) != kHttp2Preface.substr(0, n)) return PrefaceMatch::kNo;
  return n == kHttp2Preface.size() ? PrefaceMatch::kYes : PrefaceMatch::kPartial;
}

class Http2Stream;

class Http2Connection {
 public:
  Http2Connection(std::shared_ptr<Server::State> state, std::unique_ptr<runtime::Stream> stream);
  ~Http2Connection();
  Http2Connection(const Http2Connection&) = delete;
  Http2Connection& operator=(const Http2Connection&) = delete;

  Task<void> Run(std::string early);
  void Drain();
  void Close();

  // For its streams.
  nghttp2_session* session() { return session_; }
  Server::State& server() { return *state_; }
  const ServerOptions& options() const { return *options_; }
  asio::io_context& io() { return state_->io; }
  void WakeWriter() { write_wake_.cancel(); }
  void HandlerStarted() { ++live_handlers_; }
  void StreamStarted() { Event(Handler::Http2Event::kStream); }
  // The stream's handler task ended: the stream goes once nghttp2 is done with it too.
  void HandlerEnded(Http2Stream* s);
  // nghttp2 closed the stream: it goes once its handler (if any) has ended.
  void StreamClosed(Http2Stream* s);

 private:
  static Task<void> WriteLoop(Http2Connection* c);
  // Feeds received bytes to nghttp2; false: the session failed (the connection ends).
  bool Feed(const char* data, std::size_t n);
  void CountFlood();
  void Event(Handler::Http2Event event) {
    if (!state_->detached) state_->handler.Http2(event);
  }
  // The connection's one deadline: idle (no stream) or a write that does not end.
  void UpdateDeadline();
  void Erase(Http2Stream* s);
  Task<void> Shutdown();
  // Drain's second phase: the GOAWAY with the last stream taken.
  void FinalGoaway();

  // nghttp2 callbacks (user_data is the connection).
  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                      std::uint8_t flags, void* user);
  static int OnInvalidHeader(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t*,
                             std::size_t, const std::uint8_t*, std::size_t, std::uint8_t,
                             void* user);
  static int OnFrameRecv(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnDataChunk(nghttp2_session*, std::uint8_t flags, std::int32_t id,
                         const std::uint8_t* data, std::size_t len, void* user);
  static int OnFrameSend(nghttp2_session*, const nghttp2_frame* frame, void* user);
  static int OnStreamClose(nghttp2_session*, std::int32_t id, std::uint32_t error, void* user);

  std::shared_ptr<Server::State> state_;
  std::shared_ptr<const ServerOptions> options_;  // the connection's, from its start
  std::unique_ptr<runtime::Stream> stream_;
  runtime::Deadline<runtime::Stream> deadline_;
  nghttp2_session* session_ = nullptr;
  std::map<std::int32_t, std::unique_ptr<Http2Stream>> streams_;
  runtime::TaskGroup writer_;
  asio::steady_timer write_wake_;     // the writer waits on it for frames to send
  asio::steady_timer handlers_done_;  // Shutdown waits on it for the handlers to end
  asio::steady_timer drain_timer_;    // the final GOAWAY without the PING's answer
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::list<Http2Connection*>::iterator handle_;
  std::size_t live_handlers_ = 0;
  bool served_any_ = false;  // a stream came: idle_timeout, not header_read_timeout, bounds it
  bool writing_ = false;
  bool done_ = false;  // the connection ends: no more reads, the writer flushes and stops
  bool draining_ = false;
  bool final_goaway_ = false;
  bool flood_counted_ = false;
};

// One HTTP/2 stream: its request as the handler reads it, its response as nghttp2 sends it.
class Http2Stream final : public Request, public Response {
 public:
  Http2Stream(Http2Connection& c, std::int32_t id)
      : c_(c), id_(id), wake_(c.io()), timer_(c.io()), task_(c.io().get_executor()) {
    head_ = &request_;
  }
  ~Http2Stream() override {
    *alive_ = false;
    timer_.cancel();
  }

  void SetPeer(const runtime::Peer& peer) { peer_ = &peer; }
  std::int32_t id() const { return id_; }

  // --- Request
  std::optional<std::uint64_t> body_size() const override {
    if (end_on_headers_) return 0;
    return content_length_;
  }
  Task<Result<std::span<const std::string_view>>> ReadSome() override;
  Task<Result<std::string_view>> ReadWhole(std::uint64_t max_bytes) override;
  bool body_complete() const override { return body_done_ && pending_.empty(); }
  const http::Headers* trailers() const override {
    return body_complete() && trailers_.size() > 0 ? &trailers_ : nullptr;
  }
  bool ClientGone() override { return closed_; }

  // --- Response
  bool WriteHead(const ResponseHead& head, std::optional<std::uint64_t> body_size) override;
  Task<bool> WriteInterim(const ResponseHead& head) override;
  Task<bool> WriteBody(std::span<const std::string_view> pieces) override;
  Task<bool> Finish() override;
  Task<bool> FinishWithTrailers(const http::Headers& trailers) override;
  Task<bool> Send(const ResponseHead& head, std::string_view body) override;
  bool head_written() const override { return head_written_; }
  void Abort() override { Reset(NGHTTP2_INTERNAL_ERROR); }
  void LongLived() override { timer_.cancel(); }  // request_timeout; write_timeout stays
  // RFC 8441 (WebSocket over HTTP/2) is not built: an HTTP/2 stream never switches.
  Task<Upgraded> SwitchProtocols(const ResponseHead&) override { co_return Upgraded{}; }

  // --- The connection's side.
  // A field of the request's header block (nghttp2 has checked its syntax).
  void AddField(std::string_view name, std::string_view value);
  // The header block ended: starts the handler, or answers (431, 400) or refuses the stream.
  void HeadersDone(bool end_stream);
  // A field of the request's trailing header block (bounded like the head; those that may
  // not be trailers dropped).
  void AddTrailer(std::string_view name, std::string_view value);
  void Data(std::string_view bytes);
  void BodyEnded() {
    body_done_ = true;
    Wake();
  }
  // nghttp2 closed it (sent or received END_STREAM both ways, or a reset): the handler's
  // pending work is cancelled (MadeYouReset: a reset stream's upstream request does not go on).
  void Closed();
  bool closed() const { return closed_; }
  bool handler_running() const { return handler_running_; }
  // Cancels the handler's task (the connection ends).
  void Cancel() {
    closed_ = true;
    task_.CancelAll();
    Wake();
  }

 private:
  friend class Http2Connection;
  static Task<void> Serve(Http2Connection* c, Http2Stream* s);
  static ssize_t ReadOut(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                         std::uint32_t* flags, nghttp2_data_source* source, void*);

  void Wake() { wake_.cancel(); }
  // Waits for Wake or `until`; false: `until` passed.
  Task<bool> WaitUntil(Clock::time_point until);
  // Answers with the server's own error (the handler is not asked, or gave no answer).
  void Reply(int status, std::string_view code, std::string_view message);
  // Submits the response head (and the data provider unless the response has no body).
  void Submit();
  // Marks the body ended and lets nghttp2 send the rest.
  void EndBody();
  // Queues out_trailers_ as the stream's last HEADERS (from ReadOut, at the body's end).
  bool SubmitTrailers();
  void Reset(std::uint32_t error);
  void ArmRequestTimeout();
  Error BodyFailed(int status, std::string_view code, std::string message, ErrorCode error);

  Http2Connection& c_;
  const std::int32_t id_;
  asio::steady_timer wake_;   // the handler waits on it for body bytes, room or the close
  asio::steady_timer timer_;  // request_timeout
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  runtime::TaskGroup task_;  // the handler: cancelled alone when the stream closes

  // The request.
  http::RequestHead request_;
  std::string authority_;
  std::string cookies_;  // HTTP/2 splits Cookie into fields; HTTP/1 has one (RFC 9113 8.2.3)
  std::optional<std::uint64_t> content_length_;
  std::size_t header_bytes_ = 0;
  std::uint32_t fields_ = 0;
  bool too_large_ = false;
  bool repeated_host_ = false;
  bool end_on_headers_ = false;
  http::Headers trailers_;  // the request's
  std::string pending_;     // received, not yet handed to the handler
  std::string reading_;     // handed out by the last ReadSome (its view)
  std::string_view piece_;
  std::size_t unconsumed_ = 0;  // bytes handed out, not yet given back to flow control
  std::uint64_t body_bytes_ = 0;
  std::string whole_;
  bool body_done_ = false;
  bool discard_ = false;  // answered without the body: arriving bytes are dropped
  int error_status_ = 0;
  std::string error_code_;
  std::string error_message_;

  // The response.
  ResponseHead out_head_;  // copied by WriteHead: submitted with the first bytes or the end
  std::optional<std::uint64_t> out_size_;
  http::Headers out_trailers_;  // FinishWithTrailers': sent once the body is out
  std::string out_;
  std::size_t out_pos_ = 0;
  bool head_written_ = false;
  bool submitted_ = false;
  bool no_body_ = false;
  bool finished_ = false;
  bool closed_ = false;
  bool handler_running_ = false;
  bool handler_done_ = false;
};

// --- Http2Stream

void Http2Stream::AddField(std::string_view name, std::string_view value) {
  header_bytes_ += name.size() + value.size() + 32;  // RFC 9113 6.5.2's accounting
  ++fields_;
  const ServerOptions& o = c_.options();
  if (header_bytes_ > o.max_header_bytes || fields_ > o.max_headers) too_large_ = true;
  if (too_large_) return;  // counted, not kept: an HPACK bomb decodes into nothing held
  if (!name.empty() && name[0] == ':') {
    if (name == ":method") {
      request_.method.assign(value);
    } else if (name == ":path") {
      request_.target.assign(value);
    } else if (name == ":authority") {
      authority_.assign(value);
    }
    return;  // :scheme (and :protocol) are not part of the head
  }
  if (name == "cookie") {
    if (!cookies_.empty()) cookies_.append("; ");
    cookies_.append(value);
    return;
  }
  // nghttp2 refused the others; `te: trailers` stays (an HTTP/2 upstream gets it: gRPC servers
  // require it; an HTTP/1.1 upstream does not, upstream/cluster.cpp).
  if (name == "te" && value == "trailers") {
    request_.headers.Add(name, value);
    return;
  }
  if (IsConnectionSpecific(name)) return;
  if (name == "host" && request_.headers.Has("host")) repeated_host_ = true;
  if (name == "content-length") {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (ec == std::errc() && end == value.data() + value.size()) content_length_ = n;
  }
  request_.headers.Add(name, value);
}

void Http2Stream::AddTrailer(std::string_view name, std::string_view value) {
  header_bytes_ += name.size() + value.size() + 32;
  ++fields_;
  const ServerOptions& o = c_.options();
  if (header_bytes_ > o.max_header_bytes || fields_ > o.max_headers) return;  // not kept
  http::AddTrailer(trailers_, name, value);
}

void Http2Stream::HeadersDone(bool end_stream) {
  end_on_headers_ = end_stream;
  body_done_ = end_stream;
  if (too_large_) {
    Reply(431, "headers_too_large",
          fmt::format("request header list exceeds {} bytes or {} fields",
                      c_.options().max_header_bytes, c_.options().max_headers));
    return;
  }
  if (!cookies_.empty()) request_.headers.Add("cookie", cookies_);
  const auto host = request_.headers.Get("host");
  const char* bad = nullptr;
  if (request_.method == "CONNECT") {
    bad = "CONNECT is not served over HTTP/2";
  } else if (request_.target.empty() || (request_.target[0] != '/' && request_.target != "*")) {
    bad = "the :path is not an origin-form target";
  } else if (repeated_host_) {
    bad = "more than one Host header";
  } else if (host && !authority_.empty() && !http::EqualsIgnoreCase(*host, authority_)) {
    bad = "Host differs from :authority";
  } else if (!host && authority_.empty()) {
    bad = "no :authority or Host";
  }
  if (bad != nullptr) {
    Reply(400, "bad_request", bad);
    return;
  }
  if (!host) request_.headers.Add("host", authority_);
  c_.StreamStarted();
  ArmRequestTimeout();
  handler_running_ = true;
  c_.HandlerStarted();
  task_.Spawn(Serve(&c_, this));
}

void Http2Stream::Data(std::string_view bytes) {
  body_bytes_ += bytes.size();
  const std::uint64_t limit = c_.options().max_body_bytes;
  if (!discard_ && limit != 0 && body_bytes_ > limit) {
    BodyFailed(413, "body_too_large",
               fmt::format("request body exceeds the limit of {} bytes", limit),
               ErrorCode::kResourceExhausted);
    discard_ = true;
    Wake();
  }
  if (discard_) {
    nghttp2_session_consume(c_.session(), id_, bytes.size());
    return;
  }
  pending_.append(bytes);
  Wake();
}

void Http2Stream::Closed() {
  closed_ = true;
  // Bytes received and never given back: the connection's window gets them back now.
  const std::size_t unread = pending_.size() + unconsumed_;
  if (unread > 0) nghttp2_session_consume_connection(c_.session(), unread);
  pending_.clear();
  unconsumed_ = 0;
  timer_.cancel();
  if (handler_running_) task_.CancelAll();
  Wake();
}

Task<bool> Http2Stream::WaitUntil(Clock::time_point until) {
  wake_.expires_at(until);
  auto [ec] = co_await wake_.async_wait(kNoThrow);
  co_return ec == asio::error::operation_aborted || Clock::now() < until;
}

Error Http2Stream::BodyFailed(int status, std::string_view code, std::string message,
                              ErrorCode error) {
  error_status_ = status;
  error_code_ = std::string(code);
  error_message_ = message;
  return Error(error, std::move(message));
}

Task<Result<std::span<const std::string_view>>> Http2Stream::ReadSome() {
  reading_.clear();
  if (unconsumed_ > 0 && !closed_) {
    // Given back as the handler takes more: the client may send as much again.
    nghttp2_session_consume(c_.session(), id_, unconsumed_);
    c_.WakeWriter();
  }
  unconsumed_ = 0;
  for (;;) {
    if (error_status_ != 0) {
      co_return tl::unexpected(Error(ErrorCode::kResourceExhausted, error_message_));
    }
    if (!pending_.empty()) {
      reading_.swap(pending_);
      unconsumed_ = reading_.size();
      piece_ = reading_;
      co_return std::span<const std::string_view>(&piece_, 1);
    }
    if (body_done_) co_return std::span<const std::string_view>();
    if (closed_) {
      co_return tl::unexpected(Error(ErrorCode::kConnectionClosed, "the client reset the stream"));
    }
    co_await WaitUntil(Clock::time_point::max());
  }
}

Task<Result<std::string_view>> Http2Stream::ReadWhole(std::uint64_t max_bytes) {
  std::uint64_t limit = max_bytes;
  if (c_.options().max_body_bytes != 0) limit = std::min(limit, c_.options().max_body_bytes);
  const auto too_large = [&] {
    return BodyFailed(413, "body_too_large",
                      fmt::format("request body exceeds the limit of {} bytes", limit),
                      ErrorCode::kResourceExhausted);
  };
  if (content_length_ && *content_length_ > limit) co_return tl::unexpected(too_large());
  whole_.clear();
  for (;;) {
    auto piece = co_await ReadSome();
    if (!piece) co_return tl::unexpected(piece.error());
    if (piece->empty()) break;
    for (std::string_view p : *piece) whole_.append(p);
    if (whole_.size() > limit) co_return tl::unexpected(too_large());
  }
  co_return std::string_view(whole_);
}

bool Http2Stream::WriteHead(const ResponseHead& head, std::optional<std::uint64_t> body_size) {
  if (head_written_ || closed_) return false;
  head_written_ = true;
  out_head_.status = head.status;
  out_head_.headers = head.headers;
  out_size_ = body_size;
  no_body_ = request_.method == "HEAD" || head.status == 204 || head.status == 304;
  return true;
}

void Http2Stream::Submit() {
  if (submitted_ || closed_) return;
  submitted_ = true;
  char status[8];
  const auto end = std::to_chars(status, status + sizeof(status), out_head_.status).ptr;
  std::vector<nghttp2_nv> nva;
  std::vector<std::string> names;  // lowercased (HTTP/2 field names are lowercase)
  nva.push_back(Nv(":status", std::string_view(status, end - status)));
  names.reserve(32);
  out_head_.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::IsHopByHop(f.name) || IsConnectionSpecific(f.name)) return;
    if (http::EqualsIgnoreCase(f.name, "content-length")) return;  // framing: ours below
    std::string lower(f.name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    names.push_back(std::move(lower));
  });
  std::size_t i = 0;
  out_head_.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::IsHopByHop(f.name) || IsConnectionSpecific(f.name)) return;
    if (http::EqualsIgnoreCase(f.name, "content-length")) return;
    nva.push_back(Nv(names[i++], f.value));
  });
  char length[24];
  if (out_size_ && out_head_.status != 204 && out_head_.status != 304) {
    const auto e = std::to_chars(length, length + sizeof(length), *out_size_).ptr;
    nva.push_back(Nv("content-length", std::string_view(length, e - length)));
  }
  nghttp2_data_provider provider{};
  provider.source.ptr = this;
  provider.read_callback = &Http2Stream::ReadOut;
  // An empty response ended already (and without trailers) is one HEADERS frame with
  // END_STREAM: no empty DATA frame after it (gRPC's Trailers-Only needs exactly that).
  const bool headers_only = no_body_ || (finished_ && out_.empty() && out_trailers_.size() == 0);
  // nghttp2 copies the fields.
  const int rv = nghttp2_submit_response(c_.session(), id_, nva.data(), nva.size(),
                                         headers_only ? nullptr : &provider);
  if (rv != 0) spdlog::debug("http2: stream {}: submit response: {}", id_, nghttp2_strerror(rv));
  c_.WakeWriter();
}

ssize_t Http2Stream::ReadOut(nghttp2_session*, std::int32_t, std::uint8_t* buf, std::size_t length,
                             std::uint32_t* flags, nghttp2_data_source* source, void*) {
  auto* s = static_cast<Http2Stream*>(source->ptr);
  const std::size_t n = std::min(length, s->out_.size() - s->out_pos_);
  if (n > 0) std::memcpy(buf, s->out_.data() + s->out_pos_, n);
  s->out_pos_ += n;
  if (s->out_pos_ == s->out_.size()) {
    s->out_.clear();
    s->out_pos_ = 0;
  }
  if (n == 0 && !s->finished_) return NGHTTP2_ERR_DEFERRED;
  if (s->finished_ && s->out_.empty()) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    // Trailers end the stream in a HEADERS frame of their own: this DATA frame does not.
    if (s->out_trailers_.size() > 0 && s->SubmitTrailers()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
    }
  }
  if (n > 0) s->Wake();  // room for a waiting WriteBody
  return static_cast<ssize_t>(n);
}

Task<bool> Http2Stream::WriteInterim(const ResponseHead& head) {
  if (head_written_ || closed_) co_return false;
  if (head.status < 100 || head.status >= 200 || head.status == 101) co_return true;
  char status[8];
  const auto end = std::to_chars(status, status + sizeof(status), head.status).ptr;
  std::vector<nghttp2_nv> nva;
  std::vector<std::string> names;
  head.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::IsHopByHop(f.name) || IsConnectionSpecific(f.name)) return;
    std::string lower(f.name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    names.push_back(std::move(lower));
  });
  nva.push_back(Nv(":status", std::string_view(status, end - status)));
  std::size_t i = 0;
  head.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::IsHopByHop(f.name) || IsConnectionSpecific(f.name)) return;
    nva.push_back(Nv(names[i++], f.value));
  });
  nghttp2_submit_headers(c_.session(), NGHTTP2_FLAG_NONE, id_, nullptr, nva.data(), nva.size(),
                         nullptr);
  c_.WakeWriter();
  co_return true;
}

Task<bool> Http2Stream::WriteBody(std::span<const std::string_view> pieces) {
  if (!head_written_ || finished_ || closed_) co_return false;
  if (!no_body_) {
    for (std::string_view p : pieces) out_.append(p);
  }
  Submit();
  nghttp2_session_resume_data(c_.session(), id_);
  c_.WakeWriter();
  // Bounded buffering: past the limit, wait for the client's window (a zero window for
  // write_timeout resets the stream).
  const Clock::time_point until = Clock::now() + c_.options().http2_options.write_timeout;
  while (out_.size() - out_pos_ > kStreamOutLimit && !closed_) {
    if (!co_await WaitUntil(until)) {
      Reset(NGHTTP2_CANCEL);
      co_return false;
    }
  }
  co_return !closed_;
}

void Http2Stream::EndBody() {
  if (finished_ || closed_) return;
  finished_ = true;
  Submit();
  nghttp2_session_resume_data(c_.session(), id_);
  c_.WakeWriter();
}

Task<bool> Http2Stream::Finish() {
  if (!head_written_ || finished_ || closed_) co_return false;
  EndBody();
  co_return true;
}

Task<bool> Http2Stream::FinishWithTrailers(const http::Headers& trailers) {
  if (!head_written_ || finished_ || closed_) co_return false;
  if (!no_body_) {
    trailers.ForEach(
        [&](const http::Headers::Field& f) { http::AddTrailer(out_trailers_, f.name, f.value); });
  }
  EndBody();
  co_return true;
}

bool Http2Stream::SubmitTrailers() {
  std::vector<std::string> names;  // lowercased, as HTTP/2 wants them
  out_trailers_.ForEach([&](const http::Headers::Field& f) {
    std::string lower(f.name);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    names.push_back(std::move(lower));
  });
  std::vector<nghttp2_nv> nva;
  std::size_t i = 0;
  out_trailers_.ForEach(
      [&](const http::Headers::Field& f) { nva.push_back(Nv(names[i++], f.value)); });
  // (From the data provider: nghttp2 sends them after this last DATA frame.)
  const int rv = nghttp2_submit_trailer(c_.session(), id_, nva.data(), nva.size());
  if (rv != 0) spdlog::debug("http2: stream {}: submit trailers: {}", id_, nghttp2_strerror(rv));
  return rv == 0;
}

Task<bool> Http2Stream::Send(const ResponseHead& head, std::string_view body) {
  if (!WriteHead(head, body.size())) co_return false;
  if (!no_body_) out_.append(body);
  EndBody();
  co_return !closed_;
}

void Http2Stream::Reply(int status, std::string_view code, std::string_view message) {
  if (head_written_ || closed_) return;
  ResponseHead head;
  head.status = status;
  std::string body;
  if (c_.server().detached) {
    head.headers.Add("content-type", "application/json");
    body = ErrorJson(status, code, message);
  } else {
    c_.server().handler.MakeError(status, code, message, head, body);
  }
  WriteHead(head, body.size());
  if (!no_body_) out_.append(body);
  EndBody();
  if (!body_done_) discard_ = true;  // the rest of the body is not read
  if (!pending_.empty()) {
    nghttp2_session_consume(c_.session(), id_, pending_.size());
    pending_.clear();
  }
}

void Http2Stream::Reset(std::uint32_t error) {
  if (closed_) return;
  nghttp2_submit_rst_stream(c_.session(), NGHTTP2_FLAG_NONE, id_, error);
  finished_ = true;
  c_.WakeWriter();
}

void Http2Stream::ArmRequestTimeout() {
  const Duration timeout = c_.options().request_timeout;
  if (timeout.count() <= 0) return;
  timer_.expires_after(timeout);
  timer_.async_wait([this, alive = alive_](const error_code& ec) {
    if (ec || !*alive || closed_) return;
    if (!head_written_) {
      Reply(408, "request_timeout", "request not answered in time");
    } else {
      Reset(NGHTTP2_CANCEL);
    }
    if (handler_running_) task_.CancelAll();
    Wake();
  });
}

Task<void> Http2Stream::Serve(Http2Connection* c, Http2Stream* s) {
  if (!c->server().detached) co_await c->server().handler.Serve(*s, *s);
  if (!s->closed_) {
    if (!s->head_written_) {
      if (s->error_status_ != 0) {
        s->Reply(s->error_status_, s->error_code_, s->error_message_);
      } else {
        s->Reply(500, "internal", "the handler gave no response");
      }
    } else {
      s->EndBody();
    }
    if (!s->body_done_) s->discard_ = true;
  }
  s->handler_running_ = false;
  s->handler_done_ = true;
  c->HandlerEnded(s);  // may destroy s: nothing of it is used after
}

// --- Http2Connection

Http2Connection::Http2Connection(std::shared_ptr<Server::State> state,
                                 std::unique_ptr<runtime::Stream> stream)
    : state_(std::move(state)),
      options_(state_->options),
      stream_(std::move(stream)),
      deadline_(state_->io, *stream_),
      writer_(state_->io.get_executor()),
      write_wake_(state_->io),
      handlers_done_(state_->io),
      drain_timer_(state_->io) {
  state_->http2_connections.push_front(this);
  handle_ = state_->http2_connections.begin();

  nghttp2_session_callbacks* callbacks = nullptr;
  nghttp2_session_callbacks_new(&callbacks);
  nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, &OnHeader);
  nghttp2_session_callbacks_set_on_invalid_header_callback(callbacks, &OnInvalidHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(callbacks, &OnFrameSend);

  const Http2Options& h2 = options_->http2_options;
  nghttp2_option* option = nullptr;
  nghttp2_option_new(&option);
  // Flow control follows the handler's reads (nghttp2_session_consume), not arrival.
  nghttp2_option_set_no_auto_window_update(option, 1);
  nghttp2_option_set_stream_reset_rate_limit(option, h2.stream_reset_burst, h2.stream_reset_rate);
  nghttp2_option_set_max_continuations(option, h2.max_continuations);
  nghttp2_option_set_max_outbound_ack(option, h2.max_outbound_ack);
  nghttp2_option_set_max_settings(option, h2.max_settings);
  // (HTTP messaging stays on: nghttp2 checks pseudo-headers, content-length against DATA, and
  // refuses connection-specific fields: the h2 -> h1 smuggling shapes.)
  nghttp2_session_server_new2(&session_, callbacks, this, option);
  nghttp2_option_del(option);
  nghttp2_session_callbacks_del(callbacks);
}

Http2Connection::~Http2Connection() {
  *alive_ = false;
  drain_timer_.cancel();
  state_->http2_connections.erase(handle_);
  streams_.clear();
  if (session_ != nullptr) nghttp2_session_del(session_);
  if (!state_->detached) state_->handler.ConnectionClosed();
}

void Http2Connection::HandlerEnded(Http2Stream* s) {
  if (--live_handlers_ == 0) handlers_done_.cancel();
  if (s->closed_) Erase(s);
}

void Http2Connection::StreamClosed(Http2Stream* s) {
  s->Closed();
  if (!s->handler_running_) Erase(s);
}

void Http2Connection::Erase(Http2Stream* s) {
  nghttp2_session_set_stream_user_data(session_, s->id(), nullptr);
  streams_.erase(s->id());
  UpdateDeadline();
}

void Http2Connection::UpdateDeadline() {
  if (writing_ || done_) return;  // the write's bound holds, or the end's grace
  if (streams_.empty()) {
    deadline_.Arm(served_any_ ? options_->idle_timeout : options_->header_read_timeout);
  } else {
    deadline_.Disarm();
  }
}

bool Http2Connection::Feed(const char* data, std::size_t n) {
  const ssize_t rv =
      nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(data), n);
  if (rv < 0) {
    spdlog::debug("http2 from {}: {}", stream_->peer().address, nghttp2_strerror(rv));
    if (rv == NGHTTP2_ERR_FLOODED || rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS ||
        rv == NGHTTP2_ERR_TOO_MANY_SETTINGS) {
      CountFlood();
    }
    return false;
  }
  WakeWriter();
  UpdateDeadline();
  return true;
}

Task<void> Http2Connection::WriteLoop(Http2Connection* c) {
  std::string out;
  for (;;) {
    out.clear();
    while (out.size() < kWriteBatch) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(c->session_, &data);
      if (n < 0) {
        spdlog::debug("http2 to {}: {}", c->stream_->peer().address, nghttp2_strerror(n));
        c->done_ = true;
        break;
      }
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
    }
    if (out.empty()) {
      // Both sides are through (GOAWAY and the last stream). nghttp2 counts the drain's notice
      // as a GOAWAY sent: without streams it would end there, before the final GOAWAY.
      if (!nghttp2_session_want_read(c->session_) && !nghttp2_session_want_write(c->session_) &&
          (!c->draining_ || c->final_goaway_)) {
        c->done_ = true;
      }
      if (c->done_) break;
      c->write_wake_.expires_at(Clock::time_point::max());
      co_await c->write_wake_.async_wait(kNoThrow);
      continue;
    }
    c->writing_ = true;
    c->deadline_.Arm(c->options_->http2_options.write_timeout);
    auto [ec, n] = co_await asio::async_write(*c->stream_, asio::buffer(out), kNoThrow);
    c->writing_ = false;
    if (ec) {
      c->done_ = true;
      break;
    }
    if (!c->done_) c->deadline_.Disarm();
    c->UpdateDeadline();
  }
  error_code ignored;
  c->stream_->cancel(ignored);  // wakes the reader: the connection ends
}

Task<void> Http2Connection::Run(std::string early) {
  const Http2Options& h2 = options_->http2_options;
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, h2.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, h2.stream_window},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE,
       static_cast<std::uint32_t>(std::min<std::size_t>(options_->max_header_bytes, 1u << 30))},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<std::int32_t>(h2.connection_window));
  UpdateDeadline();
  Event(Handler::Http2Event::kConnection);
  writer_.Spawn(WriteLoop(this));
  bool ok = Feed(early.data(), early.size());
  std::string().swap(early);
  if (ok && state_->draining) Drain();
  std::unique_ptr<char[]> buffer(new char[kReadBuffer]);
  while (ok && !done_) {
    auto [ec, n] =
        co_await stream_->async_read_some(asio::buffer(buffer.get(), kReadBuffer), kNoThrow);
    if (ec) {
      if (deadline_.expired() && !writing_ && !done_) {
        // Idle: say goodbye (GOAWAY, NO_ERROR) before closing.
        nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
      }
      break;
    }
    ok = Feed(buffer.get(), n);
  }
  co_await Shutdown();
}

Task<void> Http2Connection::Shutdown() {
  // The writer sends what is queued (a GOAWAY), briefly, then stops.
  done_ = true;
  deadline_.Arm(kFlushGrace);
  WakeWriter();
  co_await writer_.Wait();
  // Streams still open are cut, and their handlers' work cancelled.
  for (auto& [id, s] : streams_) s->Cancel();
  while (live_handlers_ > 0) {
    handlers_done_.expires_at(Clock::time_point::max());
    co_await handlers_done_.async_wait(kNoThrow);
  }
  deadline_.Disarm();
  stream_->Close();
}

void Http2Connection::Drain() {
  if (draining_ || done_) return;
  draining_ = true;
  // Phase one: new streams may still race the notice; the PING's answer marks the point after
  // which none can (RFC 9113 6.8).
  // (The PING goes once the notice is out, OnFrameSend: nghttp2 would send it first.)
  nghttp2_submit_shutdown_notice(session_);
  WakeWriter();
  // A client with no stream open may not answer the PING (nghttp2 does not once it has seen a
  // GOAWAY and has nothing open): the final GOAWAY goes after a second anyway.
  drain_timer_.expires_after(std::chrono::seconds(1));
  drain_timer_.async_wait([this, alive = alive_](const error_code& ec) {
    if (!ec && *alive) FinalGoaway();
  });
}

void Http2Connection::FinalGoaway() {
  if (final_goaway_ || done_) return;
  final_goaway_ = true;
  drain_timer_.cancel();
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE,
                        nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR,
                        nullptr, 0);
  WakeWriter();
}

void Http2Connection::Close() {
  done_ = true;
  stream_->Close();
  for (auto& [id, s] : streams_) s->Cancel();
  writer_.CancelAll();
}

int Http2Connection::OnBeginHeaders(nghttp2_session* session, const nghttp2_frame* frame,
                                    void* user) {
  auto* c = static_cast<Http2Connection*>(user);
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  const std::int32_t id = frame->hd.stream_id;
  // MadeYouReset: handlers of reset streams may still be ending; their number is bounded too.
  if (c->live_handlers_ >= 2 * c->options_->http2_options.max_concurrent_streams) {
    nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
    return 0;
  }
  auto s = std::make_unique<Http2Stream>(*c, id);
  s->SetPeer(c->stream_->peer());
  nghttp2_session_set_stream_user_data(session, id, s.get());
  c->streams_.emplace(id, std::move(s));
  c->served_any_ = true;
  c->UpdateDeadline();
  return 0;
}

int Http2Connection::OnHeader(nghttp2_session* session, const nghttp2_frame* frame,
                              const std::uint8_t* name, std::size_t namelen,
                              const std::uint8_t* value, std::size_t valuelen, std::uint8_t,
                              void*) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  auto* s =
      static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
  if (s == nullptr) return 0;
  if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
    s->AddField(View(name, namelen), View(value, valuelen));
  } else if (frame->headers.cat == NGHTTP2_HCAT_HEADERS) {
    s->AddTrailer(View(name, namelen), View(value, valuelen));  // a trailing header block
  }
  return 0;
}

int Http2Connection::OnInvalidHeader(nghttp2_session* session, const nghttp2_frame* frame,
                                     const std::uint8_t*, std::size_t, const std::uint8_t*,
                                     std::size_t, std::uint8_t, void*) {
  // A field nghttp2 found malformed (CR, LF or NUL in it, bad name characters): refused, never
  // silently dropped.
  nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                            NGHTTP2_PROTOCOL_ERROR);
  return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

int Http2Connection::OnFrameRecv(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* c = static_cast<Http2Connection*>(user);
  const bool end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
      auto* s = static_cast<Http2Stream*>(
          nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
      if (s == nullptr) return 0;
      if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
        s->HeadersDone(end_stream);
      } else if (end_stream) {
        s->BodyEnded();  // the trailers (AddTrailer) are complete
      }
      return 0;
    }
    case NGHTTP2_DATA: {
      if (!end_stream) return 0;
      auto* s = static_cast<Http2Stream*>(
          nghttp2_session_get_stream_user_data(session, frame->hd.stream_id));
      if (s != nullptr) s->BodyEnded();
      return 0;
    }
    case NGHTTP2_PING:
      // Phase two: every stream the client opened before the notice has arrived.
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) != 0 && c->draining_) c->FinalGoaway();
      return 0;
    default:
      return 0;
  }
}

void Http2Connection::CountFlood() {
  if (flood_counted_) return;
  flood_counted_ = true;
  Event(Handler::Http2Event::kFlood);
}

int Http2Connection::OnFrameSend(nghttp2_session* session, const nghttp2_frame* frame, void* user) {
  auto* c = static_cast<Http2Connection*>(user);
  // nghttp2 ends a rapid reset (and its other bounds) with a GOAWAY of its own: INTERNAL_ERROR
  // in 1.52 (ENHANCE_YOUR_CALM in later versions). Ferry sends no GOAWAY with either.
  if (frame->hd.type == NGHTTP2_GOAWAY && (frame->goaway.error_code == NGHTTP2_INTERNAL_ERROR ||
                                           frame->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM)) {
    c->CountFlood();
  }
  if (frame->hd.type == NGHTTP2_GOAWAY && c->draining_ && !c->final_goaway_ &&
      frame->goaway.last_stream_id == (1u << 31) - 1) {
    nghttp2_submit_ping(session, NGHTTP2_FLAG_NONE, nullptr);  // after the notice
  }
  return 0;
}

int Http2Connection::OnDataChunk(nghttp2_session* session, std::uint8_t, std::int32_t id,
                                 const std::uint8_t* data, std::size_t len, void*) {
  auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
  if (s == nullptr) {
    nghttp2_session_consume(session, id, len);  // a stream we refused: its bytes go
    return 0;
  }
  s->Data(View(data, len));
  return 0;
}

int Http2Connection::OnStreamClose(nghttp2_session* session, std::int32_t id, std::uint32_t,
                                   void* user) {
  auto* c = static_cast<Http2Connection*>(user);
  auto* s = static_cast<Http2Stream*>(nghttp2_session_get_stream_user_data(session, id));
  if (s != nullptr) c->StreamClosed(s);
  return 0;
}

// --- Entry points

Task<void> RunHttp2(std::shared_ptr<Server::State> state, std::unique_ptr<runtime::Stream> stream,
                    std::string early) {
  Http2Connection connection(std::move(state), std::move(stream));
  co_await connection.Run(std::move(early));
}

void DrainHttp2(Http2Connection& connection) { connection.Drain(); }
void CloseHttp2(Http2Connection& connection) { connection.Close(); }

}  // namespace ferry::server
