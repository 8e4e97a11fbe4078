#include "upstream/http1_exchange.hpp"

#include <fmt/format.h>

#include <array>
#include <optional>
#include <span>
#include <string>

#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "http/serializer.hpp"
#include "runtime/deadline.hpp"
#include "runtime/read_buffer.hpp"

namespace ferry::upstream {
namespace {

using Clock = std::chrono::steady_clock;

// Upstream heads are bounded like client heads; an upstream that sends more is broken.
constexpr http::HeadLimits kHeadLimits{64 * 1024, 256};

// The exchange: sends the request, reads the head, then serves as the response's body source.
// Member order matters: the deadline (which points at the lease's stream) goes before the
// lease, and the read buffer before the buffer pool it borrows from.
class Http1Exchange final : public BodyReader::Source {
 public:
  Http1Exchange(asio::io_context& io, StreamPool::Lease lease,
                std::shared_ptr<runtime::BufferPool> buffers, InFlight in_flight)
      : lease_(std::move(lease)),
        buffers_(std::move(buffers)),
        in_flight_(std::move(in_flight)),
        in_(*buffers_),
        parser_(http::Parser::Kind::kResponse),
        deadline_(std::make_unique<runtime::Deadline<runtime::Stream>>(io, lease_.stream())),
        where_(lease_.stream().peer().address) {}
  ~Http1Exchange() override {
    deadline_.reset();
    in_.Consume(in_.size());
  }

  // The deadline is on `clock` (the caller's, maybe a fake one); the timer counts the time left.
  bool Arm(Clock::time_point deadline, const ferry::Clock& clock) {
    if (deadline == Clock::time_point::max()) return true;  // none
    const auto left = deadline - clock.now();
    if (left.count() <= 0) return false;
    deadline_->Arm(std::chrono::duration_cast<std::chrono::nanoseconds>(left));
    return true;
  }

  // Writes the head and the body. Errors carry may_retry as the keep-alive race allows.
  Task<AttemptResult> Send(const Request& request, std::string& head) {
    AttemptResult out;
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
        if (!piece) {
          out.response = tl::unexpected(piece.error());
          co_return out;
        }
        last = piece->empty();
        if (!last && chunked) {
          size_line.clear();
          http::AppendChunkSize(size_line, piece->size());
          buffers[count++] = asio::buffer(size_line);
        }
        if (!last) buffers[count++] = asio::buffer(piece->data(), piece->size());
        if (!last && chunked)
          buffers[count++] = asio::buffer(http::kCrlf.data(), http::kCrlf.size());
        if (last && chunked) {
          buffers[count++] = asio::buffer(http::kLastChunk.data(), http::kLastChunk.size());
        }
      }
      if (count > 0) {
        const std::span<const asio::const_buffer> list(buffers.data(), count);
        auto [ec, written] = co_await asio::async_write(lease_.stream(), list, kNoThrow);
        if (ec) {
          out.may_retry =
              lease_.reused() && !deadline_->expired() && ec != asio::error::operation_aborted;
          out.response = tl::unexpected(IoError(ec, "sending the request"));
          co_return out;
        }
      }
      head_sent = true;
      if (last) break;
    }
    out.response = Response{};
    co_return out;
  }

  // Reads up to the final response head; fills `response`'s head.
  Task<AttemptResult> ReadHead(const Request& request) {
    AttemptResult out;
    const bool head_request = request.method == "HEAD";
    if (head_request) parser_.ExpectNoBody();
    http::HeadScanner scanner(kHeadLimits);
    bool any_byte = false;
    for (;;) {
      const auto state = scanner.Scan(in_.data());
      if (state == http::HeadScanner::State::kComplete) {
        if (scanner.tabs()) parser_.HeadHasTabs();
        auto n = parser_.Feed(in_.data().substr(0, scanner.head_size()));
        if (!n || !parser_.head_done()) {
          out.response =
              tl::unexpected(Protocol(n ? "incomplete response head" : n.error().message()));
          co_return out;
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
              out.response = Fail(ErrorCode::kCancelled,
                                  "upstream " + where_ + ": the interim response's sink stopped");
              co_return out;
            }
          }
          parser_.Reset();
          if (head_request) parser_.ExpectNoBody();
          scanner.Reset();
          continue;
        }
        http::ResponseHead& head = parser_.response();
        keep_alive_ = head.keep_alive;
        switch (head.framing) {
          case http::BodyFraming::kNone:
            length_ = 0;
            break;
          case http::BodyFraming::kContentLength:
            length_ = head.content_length;
            break;
          default:
            length_.reset();
        }
        Response response;
        response.status = status;
        response.reason = std::move(head.reason);
        response.headers = std::move(head.headers);
        out.response = std::move(response);
        co_return out;
      }
      if (state == http::HeadScanner::State::kMalformed) {
        out.response = tl::unexpected(Protocol(scanner.error()));
        co_return out;
      }
      if (state != http::HeadScanner::State::kIncomplete ||
          (in_.full() && !in_.Grow(kHeadLimits.max_bytes + 4))) {
        out.response = tl::unexpected(Protocol("response head too large"));
        co_return out;
      }
      auto [ec, n] = co_await lease_.stream().async_read_some(
          asio::buffer(in_.WritePtr(), in_.WriteSpace()), kNoThrow);
      if (ec) {
        out.may_retry = !any_byte && lease_.reused() && !deadline_->expired() &&
                        ec != asio::error::operation_aborted;
        out.response =
            tl::unexpected(IoError(ec, any_byte ? "closed mid-response head"
                                                : "closed the connection without responding"));
        co_return out;
      }
      any_byte = true;
      in_.Commit(n);
    }
  }

  // --- BodyReader::Source
  Task<Result<std::string_view>> Read() override {
    for (;;) {
      std::vector<std::string_view>& chunks = parser_.body_chunks();
      while (next_chunk_ < chunks.size()) {
        const std::string_view piece = chunks[next_chunk_++];
        if (!piece.empty()) co_return piece;
      }
      chunks.clear();
      next_chunk_ = 0;
      in_.Consume(consumed_);
      consumed_ = 0;
      if (error_) co_return tl::unexpected(*error_);
      if (done_) co_return std::string_view();
      if (parser_.message_done()) {
        Finish();
        co_return std::string_view();
      }
      if (!in_.empty()) {
        auto n = parser_.Feed(in_.data());
        if (!n) co_return tl::unexpected(Failed(Protocol(n.error().message())));
        consumed_ = *n;
        continue;
      }
      auto [ec, n] = co_await lease_.stream().async_read_some(
          asio::buffer(in_.WritePtr(), in_.WriteSpace()), kNoThrow);
      if (ec == asio::error::eof) {
        if (parser_.FinishOnEof()) {
          eof_ = true;  // an until-close body ended: complete, but the connection is gone
          continue;
        }
        co_return tl::unexpected(
            Failed(Error(ErrorCode::kConnectionClosed,
                         "upstream " + where_ + " closed the connection mid-body")));
      }
      if (ec) co_return tl::unexpected(Failed(IoError(ec, "reading the response body")));
      in_.Commit(n);
    }
  }
  bool done() const override { return done_; }
  std::optional<std::uint64_t> length() const override { return length_; }

  // From the caller once the response head is here: the body's end ends the request.
  void TakeInFlight(InFlight in_flight) { in_flight_ = std::move(in_flight); }

  // An empty body is over with its head: the connection goes back at once.
  void FinishIfEmpty() {
    if (parser_.message_done() && !done_) Finish();
  }

 private:
  void Finish() {
    deadline_.reset();
    const bool reusable = keep_alive_ && !eof_ && in_.empty();
    in_.Consume(in_.size());
    in_.Release();
    lease_.Release(reusable);
    if (in_flight_.endpoint() != nullptr) in_flight_.endpoint()->health.Succeeded();
    in_flight_.End();
    done_ = true;
  }
  Error Failed(Error error) {
    if (error.code() != ErrorCode::kCancelled && in_flight_.endpoint() != nullptr) {
      in_flight_.endpoint()->health.Failed(Clock::now());
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
  Error IoError(const error_code& ec, std::string_view what) {
    if (deadline_ && deadline_->expired()) {
      return Error(ErrorCode::kDeadlineExceeded,
                   fmt::format("upstream {}: deadline passed ({})", where_, what));
    }
    if (ec == asio::error::operation_aborted) {
      return Error(ErrorCode::kCancelled, fmt::format("upstream {}: cancelled ({})", where_, what));
    }
    return Error(ErrorCode::kConnectionClosed,
                 fmt::format("upstream {}: {}: {}", where_, what, ec.message()));
  }
  Error Protocol(std::string_view why) {
    return Error(ErrorCode::kUpstreamProtocol,
                 fmt::format("upstream {}: bad response: {}", where_, why));
  }

  StreamPool::Lease lease_;
  std::shared_ptr<runtime::BufferPool> buffers_;
  InFlight in_flight_;
  runtime::ReadBuffer in_;
  http::Parser parser_;
  std::unique_ptr<runtime::Deadline<runtime::Stream>> deadline_;
  std::string where_;
  std::optional<std::uint64_t> length_;
  std::optional<Error> error_;
  std::size_t next_chunk_ = 0;  // body_chunks() handed out so far
  std::size_t consumed_ = 0;    // bytes of in_ the parser took for those chunks
  bool keep_alive_ = false;
  bool eof_ = false;
  bool done_ = false;
};

}  // namespace

Task<AttemptResult> ExchangeHttp1(asio::io_context& io, StreamPool::Lease& lease,
                                  const Request& request, Clock::time_point deadline,
                                  const ferry::Clock& clock,
                                  const std::shared_ptr<runtime::BufferPool>& buffers,
                                  InFlight& in_flight) {
  auto exchange = std::make_unique<Http1Exchange>(io, std::move(lease), buffers, InFlight());
  AttemptResult out;
  if (!exchange->Arm(deadline, clock)) {
    out.response =
        Fail(ErrorCode::kDeadlineExceeded, "deadline passed before the request was sent");
    co_return out;
  }
  std::string head;
  http::AppendRequestHead(head, request.method, request.target, request.headers);
  AttemptResult sent = co_await exchange->Send(request, head);
  if (!sent.response) co_return sent;
  AttemptResult got = co_await exchange->ReadHead(request);
  if (!got.response) co_return got;
  exchange->TakeInFlight(std::move(in_flight));
  exchange->FinishIfEmpty();
  got.response->body = BodyReader(std::move(exchange));
  co_return got;
}

}  // namespace ferry::upstream
