#include "upstream/http2_exchange.hpp"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <utility>
#include <vector>

#include "http/trailers.hpp"
#include "runtime/io_watch.hpp"

namespace ferry::upstream {

namespace {

// Fields that belong to one HTTP/1.1 connection and are malformed in HTTP/2 (RFC 9113 8.2.2);
// host becomes :authority. (te is kept only as "te: trailers".)
bool ConnectionSpecific(std::string_view name) {
  for (std::string_view n :
       {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}) {
    if (http::EqualsIgnoreCase(name, n)) return true;
  }
  return false;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

Http2Exchange::Http2Exchange(asio::io_context& io, StreamPool::Lease lease,
                             std::shared_ptr<Http2Connection> connection)
    : lease_(std::move(lease)),
      connection_(std::move(connection)),
      state_(std::make_shared<Http2StreamState>(io.get_executor())) {
  deadline_.emplace(io, state_->waker);
}

Http2Exchange::~Http2Exchange() {
  deadline_.reset();
  if (!done_) {
    connection_->Consume(*state_, handed_);
    if (in_flight_.endpoint() != nullptr) in_flight_.End();
    connection_->Cancel(*state_);  // (nothing if it closed already)
    // A stream's end never closes the shared connection; only the connection's failure does.
    lease_.Release(!connection_->failure());
  }
}

bool Http2Exchange::Arm(TimePoint deadline, TimePoint now) {
  return ArmUntil(*deadline_, deadline, now);
}

std::optional<Error> Http2Exchange::Stopped(const Request* request) {
  if (deadline_->expired()) {
    connection_->Cancel(*state_);
    return Error(ErrorCode::kDeadlineExceeded,
                 fmt::format("upstream {}: deadline passed (HTTP/2 stream reset)",
                             lease_.stream().peer().address));
  }
  if (request != nullptr && request->watch != nullptr && request->watch->aborted()) {
    connection_->Cancel(*state_);
    return Error(ErrorCode::kCancelled, "the try was aborted");
  }
  return std::nullopt;
}

Error Http2Exchange::StreamError(std::string_view waiting_for) const {
  if (state_->failure) return *state_->failure;
  if (state_->refused) {
    return Error(ErrorCode::kConnectionClosed,
                 fmt::format("the upstream refused the HTTP/2 stream (before {})", waiting_for));
  }
  return Error(ErrorCode::kConnectionClosed,
               fmt::format("the upstream reset the HTTP/2 stream (code {}) before {}",
                           state_->error_code, waiting_for));
}

Task<Result<void>> Http2Exchange::Run(const Request& request, Response& out) {
  if (auto stopped = Stopped(&request)) co_return tl::unexpected(*stopped);
  std::string authority;
  std::vector<std::pair<std::string, std::string>> fields;
  request.sent_headers().ForEach([&](const http::Headers::Field& field) {
    if (http::EqualsIgnoreCase(field.name, "host")) {
      authority = field.value;
      return;
    }
    if (ConnectionSpecific(field.name)) return;
    if (http::EqualsIgnoreCase(field.name, "te") &&
        !http::EqualsIgnoreCase(field.value, "trailers")) {
      return;
    }
    fields.emplace_back(Lower(field.name), std::string(field.value));
  });
  if (auto opened = connection_->Open(state_, request.sent_method(), request.sent_target(),
                                      authority, fields, request.body != nullptr);
      !opened) {
    may_retry_ = state_->refused;
    co_return tl::unexpected(opened.error());
  }

  // --- the body, a piece at a time: the next is read once nghttp2 took this one
  if (request.body != nullptr) {
    for (;;) {
      auto piece = co_await request.body->Read();
      if (!piece) {
        connection_->Cancel(*state_);
        co_return tl::unexpected(piece.error());
      }
      if (piece->empty()) {
        if (const http::Headers* trailers = request.body->trailers()) {
          trailers->ForEach([&](const http::Headers::Field& field) {
            if (http::AllowedInTrailer(field.name)) {
              state_->out_trailers.emplace_back(Lower(field.name), std::string(field.value));
            }
          });
        }
        state_->out_eof = true;
        connection_->ResumeBody(*state_);
        break;
      }
      state_->out.assign(piece->data(), piece->size());
      state_->out_offset = 0;
      connection_->ResumeBody(*state_);
      // (The server may answer early and end the stream: then the rest is not sent.)
      while (!state_->out.empty() && !state_->closed && !state_->end_stream) {
        if (auto stopped = Stopped(&request)) co_return tl::unexpected(*stopped);
        co_await state_->waker.Wait();
      }
      if (state_->closed || state_->end_stream) break;
    }
  }

  // --- the final head
  while (!state_->head_done) {
    if (state_->closed) {
      // Never processed (refused, above a GOAWAY's last id), or the reused connection was
      // found dead before any answer (the keep-alive race): another connection may take it.
      may_retry_ = state_->refused || (state_->failure.has_value() && lease_.reused());
      co_return tl::unexpected(StreamError("the response head"));
    }
    if (auto stopped = Stopped(&request)) co_return tl::unexpected(*stopped);
    co_await state_->waker.Wait();
  }
  out.status = state_->status;
  out.reason.clear();
  out.headers = std::move(state_->headers);
  if (auto cl = out.headers.Get("content-length")) {
    std::uint64_t n = 0;
    const auto [end, ec] = std::from_chars(cl->data(), cl->data() + cl->size(), n);
    if (ec == std::errc() && end == cl->data() + cl->size()) length_ = n;
  } else if (state_->end_stream && state_->in.empty()) {
    length_ = 0;
  }
  co_return Ok();
}

void Http2Exchange::FinishIfEmpty() {
  if (!done_ && state_->end_stream && state_->in.empty()) Finish();
}

std::optional<Result<std::string_view>> Http2Exchange::Step() {
  if (error_) return Result<std::string_view>(tl::unexpected(*error_));
  if (done_) return Result<std::string_view>(std::string_view());
  if (handed_ > 0) {
    connection_->Consume(*state_, handed_);
    handed_ = 0;
  }
  if (!state_->in.empty()) {
    piece_.swap(state_->in);
    state_->in.clear();
    handed_ = piece_.size();
    return Result<std::string_view>(std::string_view(piece_));
  }
  if (state_->end_stream) {
    Finish();
    return Result<std::string_view>(std::string_view());
  }
  if (state_->closed)
    return Result<std::string_view>(tl::unexpected(Failed(StreamError("the body's end"))));
  if (auto stopped = Stopped(nullptr))
    return Result<std::string_view>(tl::unexpected(Failed(*stopped)));
  return std::nullopt;
}

Task<Result<std::string_view>> Http2Exchange::Read() {
  for (;;) {
    if (auto step = Step()) co_return std::move(*step);
    co_await state_->waker.Wait();
  }
}

void Http2Exchange::Finish() {
  done_ = true;
  deadline_.reset();
  // Our side still open (the server answered before the whole body went): reset it.
  if (!state_->closed) connection_->Cancel(*state_);
  lease_.Release(!connection_->failure());
  if (in_flight_.endpoint() != nullptr) in_flight_.endpoint()->health.Succeeded();
  in_flight_.End();
}

Error Http2Exchange::Failed(Error error) {
  if (error.code() != ErrorCode::kCancelled && in_flight_.endpoint() != nullptr) {
    in_flight_.endpoint()->health.Failed(std::chrono::steady_clock::now());
  }
  in_flight_.End();
  deadline_.reset();
  connection_->Cancel(*state_);
  lease_.Release(!connection_->failure());
  done_ = true;
  error_ = error;
  return error;
}

}  // namespace ferry::upstream
