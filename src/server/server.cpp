#include "server/server.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/container/small_vector.hpp>
#include <charconv>
#include <cstring>
#include <list>
#include <vector>

#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "http/serializer.hpp"
#include "http/trailers.hpp"
#include "observability/access_log_entry.hpp"
#include "runtime/buffer_pool.hpp"
#include "runtime/deadline.hpp"
#include "runtime/immediate_io.hpp"
#include "runtime/read_buffer.hpp"
#include "runtime/task_group.hpp"
#include "server/http2_connection.hpp"
#include "server/server_state.hpp"
#include "tls/server_context.hpp"
#include "tls/tls_stream.hpp"

namespace ferry::server {

namespace {

// The default shape of the server's own answers (Handler::MakeError).
void MakeJsonError(int status, std::string_view code, std::string_view message, ResponseHead& head,
                   std::string& body) {
  head.headers.Add("content-type", "application/json");
  body = ErrorJson(status, code, message);
}

}  // namespace

void Handler::MakeError(int status, std::string_view code, std::string_view message,
                        ResponseHead& head, std::string& body) {
  MakeJsonError(status, code, message, head, body);
}

std::string ErrorJson(int status, std::string_view code, std::string_view message) {
  std::string body = R"({"error":{"code":")";
  observability::AppendJsonStringContent(code, body);
  body.append(R"(","status":)");
  body.append(std::to_string(status));
  body.append(R"(,"message":")");
  observability::AppendJsonStringContent(message, body);
  body.append("\"}}\n");
  return body;
}

// A parked connection: its stream waits for readability with a plain handler, which owns this
// record; the server's list points at it until it resumes or is closed.
struct Parked {
  std::shared_ptr<Server::State> state;
  std::unique_ptr<runtime::Stream> stream;
  std::uint64_t served = 0;
  std::chrono::steady_clock::time_point until;  // its idle timeout
  std::list<Parked*>::iterator handle;
  bool closed = false;  // taken off the list and closed (Drain, Close, timeout)

  // Closes it now (the pending wait ends aborted later, and frees the record).
  void CloseNow() {
    closed = true;
    state->parked.erase(handle);
    stream->Close();
    if (!state->detached) state->handler.ConnectionClosed();
  }
};

void Park(std::shared_ptr<Server::State> state, std::unique_ptr<runtime::Stream> stream,
          std::uint64_t served, Duration idle_timeout);

namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// After answering with the request body unread, the connection reads and drops what the client
// still sends for this long before closing: closing with unread bytes sends a reset, which can
// destroy the answer before the client reads it.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr std::uint64_t kLingerBytes = 64ull * 1024 * 1024;

void AppendNumber(std::string& out, std::uint64_t value) {
  char digits[24];
  const auto end = std::to_chars(digits, digits + sizeof(digits), value).ptr;
  out.append(digits, end);
}

// RFC 9112 rules llhttp leaves to its caller (as the proxy checks them): exactly one Host in an
// HTTP/1.1 request (3.2), no Transfer-Encoding in an HTTP/1.0 one (6.1), and no Connection
// naming a field that frames or routes the request (RFC 9110 7.6.1).
const char* CheckFraming(const http::Http1RequestHead& request) {
  int hosts = 0;
  bool connection_names_framing = false;
  request.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::EqualsIgnoreCase(f.name, "host")) {
      ++hosts;
    } else if (http::EqualsIgnoreCase(f.name, "connection") &&
               !http::NamesFramingField(f.value).empty()) {
      connection_names_framing = true;
    }
  });
  if (connection_names_framing) {
    return "Connection names Content-Length, Transfer-Encoding or Host";
  }
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && request.version_minor >= 1) return "missing Host header (required in HTTP/1.1)";
  if (request.version_minor == 0 && request.headers.Has("transfer-encoding")) {
    return "Transfer-Encoding in an HTTP/1.0 request";
  }
  return nullptr;
}

}  // namespace

// One client connection, and the Request and Response of its current exchange.
class Connection final : public Request, public Response {
 public:
  // `served`: requests served before it parked (0: a new connection).
  Connection(std::shared_ptr<Server::State> server, std::unique_ptr<runtime::Stream> stream,
             std::uint64_t served)
      : server_(std::move(server)),
        stream_(std::move(stream)),
        deadline_(server_->io, *stream_),
        in_(server_->buffers),
        parser_(http::Parser::Kind::kRequest),
        served_(served) {
    peer_ = &stream_->peer();
    server_->connections.push_front(this);
    handle_ = server_->connections.begin();
    if (served_ == 0) server_->handler.ConnectionOpened();
  }
  ~Connection() override {
    server_->connections.erase(handle_);
    if (!parking_ && !http2_ && !server_->detached) server_->handler.ConnectionClosed();
  }

  static Task<void> Run(std::shared_ptr<Server::State> server,
                        std::unique_ptr<runtime::Stream> stream, std::uint64_t served) {
    std::unique_ptr<runtime::Stream> http2;  // the client spoke HTTP/2 (h2c, prior knowledge)
    std::string early;
    {
      Connection connection(server, std::move(stream), served);
      co_await connection.Serve();
      if (connection.parking_) {
        Park(std::move(server), std::move(connection.stream_), connection.served_,
             connection.options_->idle_timeout);
        co_return;
      }
      if (connection.http2_) {
        http2 = std::move(connection.stream_);
        early.assign(connection.in_.data());
      }
    }
    if (http2) co_await RunHttp2(std::move(server), std::move(http2), std::move(early));
  }

  bool idle() const { return idle_; }
  // The sweep's tick: an idle connection seen idle at two ticks in a row parks.
  void Tick() {
    if (!idle_ || park_ || ++idle_ticks_ < 2) return;
    park_ = true;
    error_code ignored;
    stream_->cancel(ignored);  // ends the idle wait; Serve then returns to park
  }
  runtime::Stream& stream() { return *stream_; }

  // --- Request
  std::optional<std::uint64_t> body_size() const override {
    switch (framing_) {
      case http::BodyFraming::kContentLength:
        return content_length_;
      case http::BodyFraming::kChunked:
      case http::BodyFraming::kUntilClose:
        return std::nullopt;
      case http::BodyFraming::kNone:
        break;
    }
    return 0;
  }
  Task<Result<std::span<const std::string_view>>> ReadSome() override;
  Task<Result<std::string_view>> ReadWhole(std::uint64_t max_bytes) override;
  bool body_complete() const override { return parser_.message_done(); }
  const http::Headers* trailers() const override {
    return parser_.message_done() ? parser_.trailers() : nullptr;
  }
  bool ClientGone() override { return stream_->PeerGone(); }

  // --- Response
  bool WriteHead(const ResponseHead& head, std::optional<std::uint64_t> body_size) override;
  Task<bool> WriteInterim(const ResponseHead& head) override;
  Task<bool> WriteBody(std::span<const std::string_view> pieces) override;
  Task<bool> Finish() override;
  Task<bool> FinishWithTrailers(const http::Headers& trailers) override;
  Task<bool> Send(const ResponseHead& head, std::string_view body) override;
  bool head_written() const override { return head_written_; }
  Task<Upgraded> SwitchProtocols(const ResponseHead& head) override;
  void Abort() override {
    write_failed_ = true;  // nothing more is written: the connection closes as it is
    close_after_ = true;
  }
  void LongLived() override {
    long_lived_ = true;   // each write is bounded by io_timeout instead; the connection closes
    close_after_ = true;  // with the stream (no keep-alive after it)
    deadline_.Disarm();
  }

 private:
  enum class HeadResult { kReady, kClosed, kReplied, kHttp2 };

  Task<void> Serve();
  Task<HeadResult> ReadHead();
  // Takes the parsed head for the handler: framing fields out, per-request state reset.
  void StartExchange();
  // Sends the prepared error (PrepareError, then SendError: no temporaries in a co_await).
  void PrepareError(int status, std::string_view code, std::string message);
  Task<bool> SendError();
  // Reads more client bytes into in_; false on EOF, error or deadline.
  Task<bool> ReadMore();
  Task<bool> WriteOut(std::span<const asio::const_buffer> buffers);
  void ConsumePending();
  void ArmIo();
  void DisarmIo();
  // Records why reading the body failed (answered if the handler does not answer) and returns
  // the error the handler gets.
  Error BodyFailed(int status, std::string_view code, std::string message, ErrorCode error);
  // Reads and drops what the client still sends, briefly, after we answered without its body.
  Task<void> Linger();

  std::shared_ptr<Server::State> server_;
  std::list<Connection*>::iterator handle_;
  std::unique_ptr<runtime::Stream> stream_;
  runtime::Deadline<runtime::Stream> deadline_;
  runtime::ReadBuffer in_;
  http::Parser parser_;
  std::shared_ptr<const ServerOptions> options_;  // this exchange's
  std::uint64_t served_ = 0;
  bool idle_ = false;
  unsigned idle_ticks_ = 0;      // sweeps seen while idle (Tick)
  bool readable_ = false;        // the idle wait filled first_: the next read takes more at once
  std::array<char, 128> first_;  // the idle wait's read (a request head's first bytes)
  bool park_ = false;            // the sweep asked it to park
  bool parking_ = false;         // Serve returned to park: Run hands the stream over
  bool http2_ = false;           // the first bytes were the HTTP/2 preface: Run hands it over

  // This exchange.
  http::BodyFraming framing_ = http::BodyFraming::kNone;
  std::uint64_t content_length_ = 0;
  bool http10_ = false;
  bool keep_alive_ = true;
  bool expect_continue_ = false;
  bool continue_sent_ = false;
  bool head_only_ = false;  // a HEAD request: the response has no body bytes
  bool head_written_ = false;
  bool head_pending_ = false;  // rendered into head_out_, not yet written
  bool finished_ = false;
  bool chunked_out_ = false;
  bool no_body_out_ = false;
  bool close_after_ = false;
  bool write_failed_ = false;
  bool long_lived_ = false;  // Response::LongLived: no request_timeout, io_timeout per write
  std::size_t pending_consume_ = 0;  // bytes of in_ the last body views point into
  std::string head_out_;
  std::string interim_out_;  // a 1xx head (WriteInterim)
  std::string size_line_;
  std::string whole_;     // ReadWhole's copy of a body that came in pieces
  int error_status_ = 0;  // a body read failed with this answer (0: none)
  std::string error_code_;
  std::string error_message_;
  ResponseHead error_head_;
  std::string error_body_;
};

Task<void> Connection::Serve() {
  bool linger = false;  // answered with client bytes unread: read them off before closing
  for (;;) {
    options_ = server_->options;
    if (in_.empty()) {
      // Idle: no buffer and no parsed headers held, only a readiness wait.
      in_.Release();
      if (served_ > 0) parser_.Release();
      if (server_->draining) break;
      idle_ = true;
      idle_ticks_ = 0;
      deadline_.Arm(served_ == 0 ? options_->header_read_timeout : options_->idle_timeout);
      // The wait reads the first bytes into a small buffer of the connection's own: a read
      // started when nothing is there costs no system call and leaves the descriptor's epoll
      // registration as it is, where a readiness wait re-arms it (EPOLL_CTL_MOD) every time.
      auto [ec, n] = co_await stream_->async_read_some(asio::buffer(first_), kNoThrow);
      idle_ = false;
      if (!ec) {
        std::memcpy(in_.WritePtr(), first_.data(), n);
        in_.Commit(n);
        readable_ = n == first_.size();  // more may be there: the next read takes it at once
      }
      if (park_) {
        park_ = false;
        if (ec == asio::error::operation_aborted && served_ > 0 && !server_->draining &&
            !deadline_.expired()) {
          deadline_.Disarm();
          parking_ = true;  // Run hands the stream to Park
          co_return;
        }
        if (!ec) continue;  // the next request came first: serve it
      }
      if (ec || deadline_.expired()) break;
      options_ = server_->options;
    }
    deadline_.Arm(options_->header_read_timeout);
    const HeadResult head = co_await ReadHead();
    if (head == HeadResult::kHttp2) {
      deadline_.Disarm();
      http2_ = true;  // Run hands the stream and the bytes read to RunHttp2
      co_return;
    }
    linger = head == HeadResult::kReplied;
    if (head != HeadResult::kReady) break;
    StartExchange();
    if (options_->request_timeout.count() > 0) {
      deadline_.Arm(options_->request_timeout);
    } else {
      deadline_.Disarm();
    }
    if (options_->max_body_bytes != 0 && framing_ == http::BodyFraming::kContentLength &&
        content_length_ > options_->max_body_bytes) {
      // Refused before its body is read (with Expect: 100-continue, instead of the 100).
      PrepareError(413, "body_too_large",
                   fmt::format("request body of {} bytes exceeds the limit of {}", content_length_,
                               options_->max_body_bytes));
      linger = co_await SendError();
      break;
    }
    co_await server_->handler.Serve(*this, *this);
    if (!head_written_ && !write_failed_) {
      if (error_status_ != 0) {
        PrepareError(error_status_, error_code_, error_message_);
      } else {
        PrepareError(500, "internal", "the handler gave no response");
      }
      co_await SendError();
    } else if (!finished_ && !write_failed_) {
      if (head_pending_ || chunked_out_) {
        co_await Finish();
      } else {
        finished_ = true;  // all is written: no coroutine frame for the common case
      }
    }
    ++served_;
    ConsumePending();
    linger = !parser_.message_done() && !write_failed_;
    if (write_failed_ || close_after_ || !parser_.message_done()) break;
  }
  deadline_.Disarm();
  if (linger && !write_failed_) {
    co_await Linger();
  } else {
    stream_->ShutdownSend();
  }
  stream_->Close();
}

Task<Connection::HeadResult> Connection::ReadHead() {
  http::HeadScanner scanner({options_->max_header_bytes, options_->max_headers});
  // h2c by prior knowledge: only a new connection's first bytes can be the preface, and what
  // the first read gave tells at once (a head starts with a method, never "PRI * HTTP/2.0").
  bool maybe_http2 = served_ == 0 && options_->http2;
  for (;;) {
    if (maybe_http2 && !in_.empty()) {
      const PrefaceMatch preface = MatchPreface(in_.data());
      if (preface == PrefaceMatch::kYes) co_return HeadResult::kHttp2;
      maybe_http2 = preface == PrefaceMatch::kPartial;
    }
    const http::HeadScanner::State state =
        maybe_http2 ? http::HeadScanner::State::kIncomplete : scanner.Scan(in_.data());
    if (state == http::HeadScanner::State::kComplete) break;
    if (state == http::HeadScanner::State::kTooLarge) {
      PrepareError(431, "headers_too_large",
                   fmt::format("request head exceeds {} bytes", options_->max_header_bytes));
      co_await SendError();
      co_return HeadResult::kReplied;
    }
    if (state == http::HeadScanner::State::kTooManyFields) {
      PrepareError(431, "headers_too_large",
                   fmt::format("request has more than {} header fields", options_->max_headers));
      co_await SendError();
      co_return HeadResult::kReplied;
    }
    if (state == http::HeadScanner::State::kMalformed) {
      PrepareError(400, "bad_request", scanner.error());
      co_await SendError();
      co_return HeadResult::kReplied;
    }
    if (in_.full() && !in_.Grow(options_->max_header_bytes + 4)) {
      PrepareError(431, "headers_too_large", "request head too large");
      co_await SendError();
      co_return HeadResult::kReplied;
    }
    if (!co_await ReadMore()) {
      if (deadline_.expired() && !in_.empty()) {
        deadline_.Arm(std::chrono::seconds(1));  // a short grace to send the 408
        PrepareError(408, "request_timeout", "request head not received in time");
        co_await SendError();
        co_return HeadResult::kReplied;
      }
      co_return HeadResult::kClosed;
    }
  }
  parser_.Reset();
  if (scanner.tabs()) parser_.HeadHasTabs();
  auto consumed = parser_.Feed(in_.data().substr(0, scanner.head_size()));
  if (!consumed || !parser_.head_done()) {
    PrepareError(400, "bad_request",
                 consumed ? std::string("incomplete request head") : consumed.error().message());
    co_await SendError();
    co_return HeadResult::kReplied;
  }
  in_.Consume(*consumed);
  if (const char* why = CheckFraming(parser_.request())) {
    PrepareError(400, "bad_request", why);
    co_await SendError();
    co_return HeadResult::kReplied;
  }
  co_return HeadResult::kReady;
}

void Connection::StartExchange() {
  http::Http1RequestHead& parsed = parser_.request();
  framing_ = parsed.framing;
  content_length_ = parsed.content_length;
  http10_ = parsed.version_minor == 0;
  keep_alive_ = parsed.keep_alive;
  expect_continue_ = parsed.expect_continue && !http10_;
  expects_continue_ = expect_continue_ && !parser_.message_done();
  head_only_ = parsed.method == "HEAD";
  // The handler sees the parser's head in place, framing fields out (the parser keeps its
  // storage for the next head).
  head_ = &parsed;
  // An upgrade is honoured only on HTTP/1.1 without a body (RFC 9110 7.8): the connection's
  // next bytes then belong to the new protocol.
  upgrade_.clear();
  if (!http10_ && parser_.message_done()) {
    const auto wanted = parsed.headers.Get("upgrade");
    bool named = false;
    parsed.headers.ForEach([&named](const http::Headers::Field& f) {
      if (http::EqualsIgnoreCase(f.name, "connection") && http::HasToken(f.value, "upgrade")) {
        named = true;
      }
    });
    // h2c by Upgrade (RFC 7540 3.2, removed by RFC 9113) is not taken, and not passed on: the
    // request is served as HTTP/1.1, its Upgrade and HTTP2-Settings dropped as hop-by-hop.
    if (wanted && named && !wanted->empty() && !http::HasToken(*wanted, "h2c")) {
      upgrade_.assign(*wanted);
    } else if (wanted && http::HasToken(*wanted, "h2c")) {
      parsed.headers.Remove("http2-settings");
    }
  }
  http::RemoveHopByHop(parsed.headers);
  if (parsed.expect_continue) parsed.headers.Remove("expect");  // (other expectations pass)
  continue_sent_ = false;
  head_written_ = false;
  head_pending_ = false;
  finished_ = false;
  chunked_out_ = false;
  no_body_out_ = false;
  close_after_ = false;
  write_failed_ = false;
  error_status_ = 0;
}

void Connection::PrepareError(int status, std::string_view code, std::string message) {
  error_head_.status = status;
  error_head_.headers.Clear();
  error_body_.clear();
  if (server_->detached) {  // the handler may be gone
    MakeJsonError(status, code, message, error_head_, error_body_);
  } else {
    server_->handler.MakeError(status, code, message, error_head_, error_body_);
  }
  close_after_ = true;
}

Task<bool> Connection::SendError() {
  if (head_written_) co_return false;
  // An error before StartExchange (a bad head) answers a request we know nothing of.
  co_return co_await Send(error_head_, error_body_);
}

void Connection::ArmIo() {
  if (options_->request_timeout.count() <= 0 || long_lived_) deadline_.Arm(options_->io_timeout);
}

void Connection::DisarmIo() {
  if (options_->request_timeout.count() <= 0 || long_lived_) deadline_.Disarm();
}

Task<bool> Connection::ReadMore() {
  if (deadline_.expired()) co_return false;
  if (readable_) {
    // The idle wait's read filled its buffer: take the rest now (an operation that completes
    // at once costs an event-loop turn, see runtime/immediate_io.hpp).
    readable_ = false;
    error_code ec;
    const std::size_t n =
        runtime::ReadNow(*stream_, asio::buffer(in_.WritePtr(), in_.WriteSpace()), ec);
    if (!ec) {
      in_.Commit(n);
      co_return true;
    }
    if (ec != asio::error::would_block) co_return false;
  }
  auto [ec, n] =
      co_await stream_->async_read_some(asio::buffer(in_.WritePtr(), in_.WriteSpace()), kNoThrow);
  if (ec) co_return false;
  in_.Commit(n);
  co_return true;
}

Task<bool> Connection::WriteOut(std::span<const asio::const_buffer> buffers) {
  if (write_failed_ || deadline_.expired()) {
    write_failed_ = true;
    co_return false;
  }
  error_code ec;
  const std::size_t done = runtime::WriteNow(*stream_, buffers, ec);
  if (ec == asio::error::would_block) {
    const auto rest = runtime::Skip(buffers, done);
    ArmIo();
    auto [wec, n] = co_await asio::async_write(*stream_, rest, kNoThrow);
    DisarmIo();
    ec = wec;
  }
  if (ec) write_failed_ = true;
  co_return !ec;
}

void Connection::ConsumePending() {
  parser_.body_chunks().clear();
  in_.Consume(pending_consume_);
  pending_consume_ = 0;
}

Error Connection::BodyFailed(int status, std::string_view code, std::string message,
                             ErrorCode error) {
  error_status_ = status;
  error_code_ = std::string(code);
  error_message_ = message;
  close_after_ = true;
  return Error(error, std::move(message));
}

Task<Result<std::span<const std::string_view>>> Connection::ReadSome() {
  ConsumePending();
  if (parser_.message_done()) co_return std::span<const std::string_view>();
  if (error_status_ != 0 || write_failed_) {
    co_return tl::unexpected(Error(ErrorCode::kFailedPrecondition, "the body cannot be read"));
  }
  if (expect_continue_ && !continue_sent_ && in_.empty() && !head_written_) {
    continue_sent_ = true;
    const std::array<asio::const_buffer, 1> buffers{
        asio::buffer(kContinue.data(), kContinue.size())};
    if (!co_await WriteOut(buffers)) {
      co_return tl::unexpected(Error(ErrorCode::kConnectionClosed, "the client went away"));
    }
  }
  for (;;) {
    if (!in_.empty()) {
      auto n = parser_.Feed(in_.data());
      if (!n) {
        co_return tl::unexpected(
            BodyFailed(400, "bad_request", n.error().message(), ErrorCode::kInvalidArgument));
      }
      if (options_->max_body_bytes != 0 && parser_.body_bytes() > options_->max_body_bytes) {
        co_return tl::unexpected(BodyFailed(
            413, "body_too_large",
            fmt::format("request body exceeds the limit of {} bytes", options_->max_body_bytes),
            ErrorCode::kResourceExhausted));
      }
      pending_consume_ = *n;
      const std::vector<std::string_view>& chunks = parser_.body_chunks();
      if (!chunks.empty() || parser_.message_done()) co_return std::span(chunks);
      ConsumePending();  // framing only (a chunk-size line): read on
      if (*n > 0) continue;
    }
    ArmIo();
    const bool more = co_await ReadMore();
    DisarmIo();
    if (!more) {
      if (deadline_.expired()) {
        deadline_.Arm(std::chrono::seconds(1));  // a short grace to send the 408
        co_return tl::unexpected(BodyFailed(408, "request_timeout",
                                            "request body not received in time",
                                            ErrorCode::kDeadlineExceeded));
      }
      write_failed_ = true;  // the client went: nothing to answer
      close_after_ = true;
      co_return tl::unexpected(Error(ErrorCode::kConnectionClosed, "the client went away"));
    }
  }
}

Task<Result<std::string_view>> Connection::ReadWhole(std::uint64_t max_bytes) {
  std::uint64_t limit = max_bytes;
  if (options_->max_body_bytes != 0) limit = std::min(limit, options_->max_body_bytes);
  const auto too_large = [&] {
    return BodyFailed(413, "body_too_large",
                      fmt::format("request body exceeds the limit of {} bytes", limit),
                      ErrorCode::kResourceExhausted);
  };
  if (framing_ == http::BodyFraming::kContentLength && content_length_ > limit) {
    co_return tl::unexpected(too_large());
  }
  whole_.clear();
  if (whole_.capacity() > 64 * 1024) std::string().swap(whole_);
  for (;;) {
    auto piece = co_await ReadSome();
    if (!piece) co_return tl::unexpected(piece.error());
    if (piece->empty()) break;
    if (parser_.message_done() && whole_.empty() && piece->size() == 1) {
      co_return piece->front();  // the common case: the body came whole, no copy
    }
    for (std::string_view p : *piece) whole_.append(p);
    if (whole_.size() > limit) co_return tl::unexpected(too_large());
  }
  co_return std::string_view(whole_);
}

bool Connection::WriteHead(const ResponseHead& head, std::optional<std::uint64_t> body_size) {
  if (head_written_) return false;
  head_written_ = true;
  const int status = head.status;
  no_body_out_ = head_only_ || status == 204 || status == 304 || status < 200;
  // A body not read by now will not be: the connection closes after this response.
  if (!parser_.message_done()) close_after_ = true;
  if (server_->draining) close_after_ = true;
  if (!keep_alive_) close_after_ = true;
  head_out_.clear();
  http::AppendResponseHead(head_out_, status,
                           head.reason.empty() ? http::ReasonPhrase(status) : head.reason,
                           head.headers);
  head_out_.resize(head_out_.size() - 2);  // the blank line: framing fields go first
  if (status != 204 && status != 304 && status >= 200) {
    if (body_size) {
      head_out_.append("content-length: ");
      AppendNumber(head_out_, *body_size);
      head_out_.append("\r\n");
    } else if (!no_body_out_ && !http10_) {
      head_out_.append("transfer-encoding: chunked\r\n");
      chunked_out_ = true;
    } else if (!no_body_out_) {
      close_after_ = true;  // an HTTP/1.0 client reads the body until close
    }
  }
  if (close_after_) {
    head_out_.append("connection: close\r\n");
  } else if (http10_) {
    head_out_.append("connection: keep-alive\r\n");
  }
  head_out_.append("\r\n");
  head_pending_ = true;
  return !write_failed_;
}

Task<bool> Connection::WriteInterim(const ResponseHead& head) {
  if (head_written_ || write_failed_) co_return false;
  if (http10_) co_return true;  // RFC 9110 15.2: never to an HTTP/1.0 client
  if (head.status == 100) {
    if (continue_sent_) co_return true;  // it would only repeat ours
    continue_sent_ = true;
  }
  interim_out_.clear();
  http::AppendResponseHead(interim_out_, head.status,
                           head.reason.empty() ? http::ReasonPhrase(head.status) : head.reason,
                           head.headers);
  const std::array<asio::const_buffer, 1> buffers{
      asio::buffer(interim_out_.data(), interim_out_.size())};
  co_return co_await WriteOut(buffers);
}

Task<bool> Connection::WriteBody(std::span<const std::string_view> pieces) {
  if (!head_written_ || finished_ || write_failed_) co_return false;
  boost::container::small_vector<asio::const_buffer, 8> out;
  if (head_pending_) out.emplace_back(head_out_.data(), head_out_.size());
  if (!no_body_out_) {
    std::size_t total = 0;
    for (std::string_view p : pieces) total += p.size();
    if (total > 0) {
      if (chunked_out_) {
        size_line_.clear();
        http::AppendChunkSize(size_line_, total);
        out.emplace_back(size_line_.data(), size_line_.size());
      }
      for (std::string_view p : pieces) {
        if (!p.empty()) out.emplace_back(p.data(), p.size());
      }
      if (chunked_out_) out.emplace_back(http::kCrlf.data(), http::kCrlf.size());
    }
  }
  if (out.empty()) co_return true;
  head_pending_ = false;
  // WriteOut's steps, inline: this is every response's write, and a nested coroutine frame
  // costs more than the lines.
  if (deadline_.expired()) {
    write_failed_ = true;
    co_return false;
  }
  const std::span<const asio::const_buffer> all(out.data(), out.size());
  error_code ec;
  const std::size_t done = runtime::WriteNow(*stream_, all, ec);
  if (ec == asio::error::would_block) {
    const auto rest = runtime::Skip(all, done);
    ArmIo();
    auto [wec, n] = co_await asio::async_write(*stream_, rest, kNoThrow);
    DisarmIo();
    ec = wec;
  }
  if (ec) write_failed_ = true;
  co_return !ec;
}

Task<bool> Connection::Finish() {
  if (!head_written_ || finished_ || write_failed_) co_return false;
  finished_ = true;
  boost::container::small_vector<asio::const_buffer, 2> out;
  if (head_pending_) out.emplace_back(head_out_.data(), head_out_.size());
  if (chunked_out_) out.emplace_back(http::kLastChunk.data(), http::kLastChunk.size());
  head_pending_ = false;
  if (out.empty()) co_return true;
  co_return co_await WriteOut(std::span<const asio::const_buffer>(out.data(), out.size()));
}

Task<bool> Connection::FinishWithTrailers(const http::Headers& trailers) {
  // Only a chunked body has room for them (RFC 9112 7.1.2); otherwise they are dropped.
  if (!chunked_out_ || !head_written_ || finished_ || write_failed_) co_return co_await Finish();
  finished_ = true;
  size_line_.clear();
  http::AppendLastChunk(size_line_, &trailers);
  boost::container::small_vector<asio::const_buffer, 2> out;
  if (head_pending_) out.emplace_back(head_out_.data(), head_out_.size());
  out.emplace_back(size_line_.data(), size_line_.size());
  head_pending_ = false;
  co_return co_await WriteOut(std::span<const asio::const_buffer>(out.data(), out.size()));
}

Task<Upgraded> Connection::SwitchProtocols(const ResponseHead& head) {
  if (head_written_ || write_failed_ || upgrade_.empty()) co_return Upgraded{};
  head_written_ = true;
  finished_ = true;
  close_after_ = true;  // the connection ends with the handler
  head_out_.clear();
  http::AppendResponseHead(head_out_, 101, http::ReasonPhrase(101), head.headers);
  head_out_.resize(head_out_.size() - 2);
  head_out_.append("connection: upgrade\r\nupgrade: ");
  head_out_.append(upgrade_);
  head_out_.append("\r\n\r\n");
  const std::array<asio::const_buffer, 1> buffers{asio::buffer(head_out_.data(), head_out_.size())};
  if (!co_await WriteOut(buffers)) co_return Upgraded{};
  deadline_.Disarm();  // request_timeout bounded the request, not the new protocol
  co_return Upgraded{stream_.get(), in_.data()};
}

Task<bool> Connection::Send(const ResponseHead& head, std::string_view body) {
  if (!WriteHead(head, body.size())) co_return false;
  const std::array<std::string_view, 1> pieces{body};
  const bool ok = co_await WriteBody(pieces);  // head and body in one write
  finished_ = ok;                              // a body of known length has no end marker
  co_return ok;
}

Task<void> Connection::Linger() {
  stream_->ShutdownSend();
  deadline_.Arm(kLingerTime);
  in_.Release();
  std::vector<char> sink(16 * 1024);
  for (std::uint64_t dropped = 0; dropped < kLingerBytes;) {
    auto [ec, got] = co_await stream_->async_read_some(asio::buffer(sink), kNoThrow);
    if (ec) break;
    dropped += got;
  }
}

namespace {

// A TLS connection: the handshake (under the header-read timeout, as a first request's head
// is), then the connection as any other. A failed handshake closes it, counted and logged at
// debug (scanners and plaintext clients make them all day).
Task<void> HandshakeThenRun(std::shared_ptr<Server::State> state,
                            std::unique_ptr<runtime::Stream> lower,
                            std::shared_ptr<const tls::ServerContext> tls) {
  const std::string client = lower->peer().address;
  auto stream =
      co_await tls::ServerHandshake(std::move(lower), *tls, state->options->header_read_timeout);
  if (!stream) {
    if (!state->detached) state->handler.HandshakeFailed();
    spdlog::debug("TLS handshake from {} failed: {}", client, stream.error().message());
    co_return;
  }
  if (state->draining) co_return;
  if (state->options->http2 && tls::NegotiatedProtocol(**stream) == "h2") {
    if (!state->detached) state->handler.ConnectionOpened();
    co_await RunHttp2(state, std::move(*stream), std::string());
    co_return;
  }
  co_await Connection::Run(state, std::move(*stream), 0);
}

Task<void> AcceptLoop(std::shared_ptr<Server::State> state, runtime::Acceptor* acceptor) {
  asio::steady_timer backoff(state->io);
  for (;;) {
    auto stream = co_await acceptor->Accept();
    if (!stream) {
      if (stream.error().code() == ErrorCode::kCancelled || !acceptor->is_open()) break;
      // Out of descriptors or memory: pause instead of spinning on the error.
      spdlog::warn("{}", stream.error().message());
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kNoThrow);
      continue;
    }
    if (state->draining) break;
    if (std::shared_ptr<const tls::ServerContext> tls = state->options->tls) {
      state->tasks.Spawn(HandshakeThenRun(state, std::move(*stream), std::move(tls)));
    } else {
      state->tasks.Spawn(Connection::Run(state, std::move(*stream), 0));
    }
  }
}

// Every park_after: idle connections tick (and park at their second), parked ones past their
// idle timeout close.
Task<void> SweepLoop(std::shared_ptr<Server::State> state) {
  for (;;) {
    const Duration every = state->options->park_after;
    state->sweep.expires_after(every.count() > 0 ? every : std::chrono::seconds(1));
    auto [ec] = co_await state->sweep.async_wait(kNoThrow);
    if (ec || state->draining) co_return;
    if (state->options->park_after.count() > 0) {
      for (Connection* c : state->connections) c->Tick();
    }
    const auto now = std::chrono::steady_clock::now();
    for (auto it = state->parked.begin(); it != state->parked.end();) {
      Parked* p = *it++;
      if (now >= p->until) p->CloseNow();
    }
  }
}

}  // namespace

void Park(std::shared_ptr<Server::State> state, std::unique_ptr<runtime::Stream> stream,
          std::uint64_t served, Duration idle_timeout) {
  auto owned = std::make_unique<Parked>();
  Parked* p = owned.get();
  p->state = std::move(state);
  p->stream = std::move(stream);
  p->served = served;
  p->until = std::chrono::steady_clock::now() + idle_timeout;
  p->state->parked.push_front(p);
  p->handle = p->state->parked.begin();
  p->stream->async_wait_readable([owned = std::move(owned)](const error_code& ec) mutable {
    if (owned->closed) return;  // closed meanwhile: nothing left but the record
    Server::State& s = *owned->state;
    if (ec || s.draining) {
      owned->CloseNow();
      return;
    }
    s.parked.erase(owned->handle);
    s.tasks.Spawn(Connection::Run(owned->state, std::move(owned->stream), owned->served));
  });
}

Server::Server(asio::io_context& io, ServerOptions options, Handler& handler)
    : state_(std::make_shared<State>(io, std::move(options), handler)) {
  state_->tasks.Spawn(SweepLoop(state_));
}

Server::~Server() {
  Close();
  state_->detached = true;  // frames that end later must not call the handler
}

void Server::Listen(std::unique_ptr<runtime::Acceptor> acceptor) {
  runtime::Acceptor* raw = acceptor.get();
  state_->acceptors.push_back(std::move(acceptor));
  state_->tasks.Spawn(AcceptLoop(state_, raw));
}

void Server::Serve(std::unique_ptr<runtime::Stream> stream) {
  state_->tasks.Spawn(Connection::Run(state_, std::move(stream), 0));
}

void Server::SetOptions(const ServerOptions& options) {
  state_->options = std::make_shared<const ServerOptions>(options);
}

void Server::Drain() {
  state_->draining = true;
  state_->sweep.cancel();
  while (!state_->parked.empty()) state_->parked.front()->CloseNow();
  for (auto& acceptor : state_->acceptors) acceptor->Close();
  for (Http2Connection* c : state_->http2_connections) DrainHttp2(*c);
  for (Connection* c : state_->connections) {
    error_code ignored;
    if (c->idle()) c->stream().cancel(ignored);  // wakes the idle wait, which then closes
  }
}

void Server::Close() {
  Drain();
  for (Connection* c : state_->connections) c->stream().Close();
  for (Http2Connection* c : state_->http2_connections) CloseHttp2(*c);
  state_->tasks.CancelAll();
}

Task<void> Server::Wait() { return state_->tasks.Wait(); }

std::size_t Server::connection_count() const {
  return state_->connections.size() + state_->parked.size() + state_->http2_connections.size();
}

std::size_t Server::parked_count() const { return state_->parked.size(); }

bool Server::draining() const { return state_->draining; }

}  // namespace ferry::server
