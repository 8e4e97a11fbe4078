#include "upstream/http1_exchange.hpp"

#include <fmt/format.h>

#include <array>
#include <span>

#include "http/head_scanner.hpp"
#include "http/serializer.hpp"
#include "http/trailers.hpp"
#include "runtime/immediate_io.hpp"

namespace ferry::upstream {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Upstream heads are bounded like client heads; an upstream that sends more is broken.
constexpr http::HeadLimits kHeadLimits{64 * 1024, 256};

// Freed exchanges of this thread, for the next ones (a request's exchange is the same size
// every time, so malloc has nothing to add).
struct Recycler {
  std::array<void*, 16> blocks{};
  std::size_t count = 0;
  ~Recycler() {
    for (std::size_t i = 0; i < count; ++i) ::operator delete(blocks[i]);
  }
};
thread_local Recycler recycler;

}  // namespace

void* Http1Exchange::operator new(std::size_t size) {
  if (size == sizeof(Http1Exchange) && recycler.count > 0) return recycler.blocks[--recycler.count];
  return ::operator new(size);
}

void Http1Exchange::operator delete(void* p, std::size_t size) {
  if (size == sizeof(Http1Exchange) && recycler.count < recycler.blocks.size()) {
    recycler.blocks[recycler.count++] = p;
    return;
  }
  ::operator delete(p);
}

Http1Exchange::Http1Exchange(asio::io_context& io, StreamPool::Lease lease,
                             std::shared_ptr<runtime::BufferPool> buffers)
    : lease_(std::move(lease)),
      buffers_(std::move(buffers)),
      in_(*buffers_),
      parser_(http::Parser::Kind::kResponse) {
  deadline_.emplace(io, lease_.stream());
}

Http1Exchange::~Http1Exchange() {
  deadline_.reset();
  in_.Consume(in_.size());
}

bool Http1Exchange::Arm(TimePoint deadline, TimePoint now) {
  return ArmUntil(*deadline_, deadline, now);
}

Task<Result<void>> Http1Exchange::Run(const Request& request, Response& out) {
  // The head, in the connection's own scratch string (no allocation once it has grown).
  std::string& head = lease_.scratch();
  head.clear();
  http::AppendRequestHead(head, request.sent_method(), request.sent_target(),
                          request.sent_headers());

  // --- the request: the head goes out with the body's first piece
  const bool chunked = request.body != nullptr && !request.body->length();
  bool head_sent = false;
  std::string size_line;
  for (;;) {
    std::array<asio::const_buffer, 4> buffers{};
    std::size_t count = 0;
    if (!head_sent) buffers[count++] = asio::buffer(head);
    bool last = request.body == nullptr;
    if (!last) {
      auto piece = co_await request.body->Read();
      if (!piece) co_return tl::unexpected(piece.error());
      last = piece->empty();
      if (!last && chunked) {
        size_line.clear();
        http::AppendChunkSize(size_line, piece->size());
        buffers[count++] = asio::buffer(size_line);
      }
      if (!last) buffers[count++] = asio::buffer(piece->data(), piece->size());
      if (!last && chunked) buffers[count++] = asio::buffer(http::kCrlf.data(), http::kCrlf.size());
      if (last && chunked) {  // the last chunk, with the body's trailers if it has any
        size_line.clear();
        http::AppendLastChunk(size_line, request.body->trailers());
        buffers[count++] = asio::buffer(size_line);
      }
    }
    if (count > 0) {
      if (auto aborted = Aborted(request)) co_return tl::unexpected(*aborted);
      const std::span<const asio::const_buffer> list(buffers.data(), count);
      error_code ec;
      const std::size_t done = runtime::WriteNow(lease_.stream(), list, ec);
      if (ec == asio::error::would_block) {
        const auto rest = runtime::Skip(list, done);
        auto [wec, written] = co_await asio::async_write(lease_.stream(), rest, kNoThrow);
        ec = wec;
      }
      if (ec) {
        may_retry_ =
            lease_.reused() && !deadline_->expired() && ec != asio::error::operation_aborted;
        co_return tl::unexpected(IoError(ec, "sending the request"));
      }
    }
    head_sent = true;
    if (last) break;
  }

  // --- the response head
  const bool head_request = request.sent_method() == "HEAD";
  if (head_request) parser_.ExpectNoBody();
  http::HeadScanner scanner(kHeadLimits);
  bool any_byte = false;
  for (;;) {
    const auto state = scanner.Scan(in_.data());
    if (state == http::HeadScanner::State::kComplete) {
      if (scanner.tabs()) parser_.HeadHasTabs();
      auto n = parser_.Feed(in_.data().substr(0, scanner.head_size()));
      if (!n || !parser_.head_done()) {
        co_return tl::unexpected(Protocol(n ? "incomplete response head" : n.error().message()));
      }
      in_.Consume(*n);
      const int status = parser_.response().status;
      if (status >= 100 && status < 200 && status != 101) {
        // An interim response (100 Continue, 103 Early Hints): the final one follows.
        if (request.interim != nullptr) {
          const http::ResponseHead& interim = parser_.response();
          const bool go_on =
              co_await request.interim->OnInterim(status, interim.reason, interim.headers);
          if (!go_on) {
            co_return Fail(ErrorCode::kCancelled,
                           fmt::format("upstream {}: the interim response's sink stopped",
                                       lease_.stream().peer().address));
          }
        }
        parser_.Reset();
        if (head_request) parser_.ExpectNoBody();
        scanner.Reset();
        continue;
      }
      http::ResponseHead& got = parser_.response();
      keep_alive_ = got.keep_alive;
      if (status == 101) {  // the bytes after it are another protocol's (TakeUpgraded)
        upgraded_ = true;
        keep_alive_ = false;
      }
      switch (got.framing) {
        case http::BodyFraming::kNone:
          length_ = 0;
          break;
        case http::BodyFraming::kContentLength:
          length_ = got.content_length;
          break;
        default:
          length_.reset();
      }
      out.status = status;
      out.reason = std::move(got.reason);  // (the parser is this exchange's own)
      out.headers = std::move(got.headers);
      co_return Ok();
    }
    if (state == http::HeadScanner::State::kMalformed) {
      co_return tl::unexpected(Protocol(scanner.error()));
    }
    if (state != http::HeadScanner::State::kIncomplete ||
        (in_.full() && !in_.Grow(kHeadLimits.max_bytes + 4))) {
      co_return tl::unexpected(Protocol("response head too large"));
    }
    if (auto aborted = Aborted(request)) co_return tl::unexpected(*aborted);
    auto [ec, n] = co_await lease_.stream().async_read_some(
        asio::buffer(in_.WritePtr(), in_.WriteSpace()), kNoThrow);
    if (ec) {
      may_retry_ = !any_byte && lease_.reused() && !deadline_->expired() &&
                   ec != asio::error::operation_aborted;
      co_return tl::unexpected(IoError(
          ec, any_byte ? "closed mid-response head" : "closed the connection without responding"));
    }
    any_byte = true;
    in_.Commit(n);
  }
}

std::optional<Result<std::string_view>> Http1Exchange::Step() {
  for (;;) {
    std::vector<std::string_view>& chunks = parser_.body_chunks();
    while (next_chunk_ < chunks.size()) {
      const std::string_view piece = chunks[next_chunk_++];
      if (!piece.empty()) return Result<std::string_view>(piece);
    }
    chunks.clear();
    next_chunk_ = 0;
    in_.Consume(consumed_);
    consumed_ = 0;
    if (error_) return Result<std::string_view>(tl::unexpected(*error_));
    if (done_) return Result<std::string_view>(std::string_view());
    if (parser_.message_done()) {
      Finish();
      return Result<std::string_view>(std::string_view());
    }
    if (in_.empty()) return std::nullopt;
    auto n = parser_.Feed(in_.data());
    if (!n) return Result<std::string_view>(tl::unexpected(Failed(Protocol(n.error().message()))));
    consumed_ = *n;
  }
}

Task<Result<std::string_view>> Http1Exchange::Read() {
  for (;;) {
    if (auto step = Step()) co_return std::move(*step);
    auto [ec, n] = co_await lease_.stream().async_read_some(
        asio::buffer(in_.WritePtr(), in_.WriteSpace()), kNoThrow);
    if (ec == asio::error::eof) {
      if (parser_.FinishOnEof()) {
        eof_ = true;  // an until-close body ended: complete, but the connection is gone
        continue;
      }
      co_return tl::unexpected(Failed(Error(
          ErrorCode::kConnectionClosed, fmt::format("upstream {} closed the connection mid-body",
                                                    lease_.stream().peer().address))));
    }
    if (ec) co_return tl::unexpected(Failed(IoError(ec, "reading the response body")));
    in_.Commit(n);
  }
}

Upgraded Http1Exchange::TakeUpgraded() {
  if (!upgraded_ || done_) return {};
  done_ = true;  // no body: reading it gives the end, and the lease is never released to reuse
  deadline_.reset();
  if (in_flight_.endpoint() != nullptr) in_flight_.endpoint()->health.Succeeded();
  in_flight_.End();
  return Upgraded{&lease_.stream(), in_.data()};
}

void Http1Exchange::Finish() {
  deadline_.reset();
  const bool reusable = keep_alive_ && !eof_ && in_.empty();
  in_.Consume(in_.size());
  in_.Release();
  lease_.Release(reusable);
  if (in_flight_.endpoint() != nullptr) in_flight_.endpoint()->health.Succeeded();
  in_flight_.End();
  done_ = true;
}

Error Http1Exchange::Failed(Error error) {
  if (error.code() != ErrorCode::kCancelled && in_flight_.endpoint() != nullptr) {
    in_flight_.endpoint()->health.Failed(SteadyClock::now());
  }
  deadline_.reset();
  in_.Consume(in_.size());
  in_.Release();
  lease_.Release(false);
  in_flight_.End();
  error_ = error;
  done_ = true;
  return error;
}

Error Http1Exchange::IoError(const error_code& ec, std::string_view what) {
  const std::string& where = lease_.stream().peer().address;
  if (deadline_ && deadline_->expired()) {
    return Error(ErrorCode::kDeadlineExceeded,
                 fmt::format("upstream {}: deadline passed ({})", where, what));
  }
  if (ec == asio::error::operation_aborted) {
    return Error(ErrorCode::kCancelled, fmt::format("upstream {}: cancelled ({})", where, what));
  }
  return Error(ErrorCode::kConnectionClosed,
               fmt::format("upstream {}: {}: {}", where, what, ec.message()));
}

std::optional<Error> Http1Exchange::Aborted(const Request& request) const {
  if (request.watch == nullptr || !request.watch->aborted()) return std::nullopt;
  return Error(ErrorCode::kCancelled,
               fmt::format("upstream {}: the try was aborted", lease_.stream().peer().address));
}

Error Http1Exchange::Protocol(std::string_view why) {
  return Error(ErrorCode::kUpstreamProtocol,
               fmt::format("upstream {}: bad response: {}", lease_.stream().peer().address, why));
}

}  // namespace ferry::upstream
