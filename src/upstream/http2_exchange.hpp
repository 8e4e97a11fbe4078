// Internal to src/upstream: one exchange as a stream of a shared HTTP/2 connection
// (Http2Connection). Run opens the stream, feeds the request body to it piece by piece (each
// piece is copied once, into the stream's state, and the next is read when nghttp2 took it),
// and waits for the final head; then it is the response's body source, whose reads reopen the
// flow-control windows. A deadline or the request's watch ending the try resets the stream
// (RST_STREAM CANCEL), never the connection; so does a reader dropped before the body's end.
// Ownership: the exchange owns its lease (a slot on the connection) and shares the connection
// and the stream's state; it gives the slot back when the body ends or it is destroyed.
// Thread safety: the event loop of the lease's pool.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "runtime/deadline.hpp"
#include "upstream/http2_connection.hpp"
#include "upstream/protocol_exchange.hpp"
#include "upstream/stream_pool.hpp"

namespace ferry::upstream {

class Http2Exchange final : public ProtocolExchange {
 public:
  Http2Exchange(asio::io_context& io, StreamPool::Lease lease,
                std::shared_ptr<Http2Connection> connection);
  ~Http2Exchange() override;

  bool Arm(TimePoint deadline, TimePoint now) override;
  void Watch(runtime::IoWatch* watch) override { deadline_->Watch(watch); }
  Task<Result<void>> Run(const Request& request, Response& out) override;
  bool may_retry() const override { return may_retry_; }
  bool unprocessed() const override { return state_->refused; }
  void TakeInFlight(InFlight in_flight) override { in_flight_ = std::move(in_flight); }
  void FinishIfEmpty() override;

  // --- BodyReader::Source
  Task<Result<std::string_view>> Read() override;
  std::optional<Result<std::string_view>> TryRead() override { return Step(); }
  bool done() const override { return done_; }
  std::optional<std::uint64_t> length() const override { return length_; }
  const http::Headers* trailers() const override {
    return state_->trailers.size() > 0 ? &state_->trailers : nullptr;
  }

 private:
  // A piece, the end, an error, or nullopt when it must wait for the stream.
  std::optional<Result<std::string_view>> Step();
  // Why the stream ended without what was waited for.
  Error StreamError(std::string_view waiting_for) const;
  // The deadline passed or the watch aborted (the stream is reset then), else nullopt.
  std::optional<Error> Stopped(const Request* request);
  void Finish();
  Error Failed(Error error);

  StreamPool::Lease lease_;
  std::shared_ptr<Http2Connection> connection_;
  std::shared_ptr<Http2StreamState> state_;
  std::optional<runtime::Deadline<Waker>> deadline_;  // over the state's waker
  InFlight in_flight_;
  runtime::IoWatch* watch_ = nullptr;
  std::string piece_;       // the body piece handed out last
  std::size_t handed_ = 0;  // its bytes, consumed (flow control) at the next read
  std::optional<std::uint64_t> length_;
  std::optional<Error> error_;  // the body failed: every later read gives it
  bool done_ = false;
  bool may_retry_ = false;
};

}  // namespace ferry::upstream
