// Internal to src/upstream: one HTTP/1.1 exchange on a leased connection, with the codec of
// src/http (serializer for the head, HeadScanner and Parser for the response). Cluster::Send
// makes one per attempt; an HTTP/2 exchange would sit beside it, on a shared connection.
// Ownership: the exchange owns its lease; once the head is read it becomes the response's body
// source (BodyReader), which gives the lease back when the body ends or is dropped.
// Thread safety: the event loop of the lease's pool.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "http/parser.hpp"
#include "runtime/asio.hpp"
#include "runtime/buffer_pool.hpp"
#include "runtime/deadline.hpp"
#include "runtime/io_watch.hpp"
#include "runtime/read_buffer.hpp"
#include "upstream/endpoint.hpp"
#include "upstream/exchange.hpp"
#include "upstream/protocol_exchange.hpp"
#include "upstream/stream_pool.hpp"

namespace ferry::upstream {

// Sends the request, reads the head, then serves as the response's body source.
// Member order matters: the deadline (which points at the lease's stream) goes after the lease
// (so it is destroyed first), and the read buffer after the buffer pool it borrows from.
class Http1Exchange final : public ProtocolExchange {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  Http1Exchange(asio::io_context& io, StreamPool::Lease lease,
                std::shared_ptr<runtime::BufferPool> buffers);
  ~Http1Exchange() override;

  // One per request: their memory is recycled on each thread rather than given back to malloc.
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size);

  // Arms the deadline (`now` read on the caller's clock; TimePoint::max(): none); false if it
  // has passed.
  bool Arm(TimePoint deadline, TimePoint now) override;
  // Lets `watch` (null: none) watch the socket until the response head (runtime::IoWatch): its
  // notice comes from this exchange's deadline timer, its Abort ends Run with kCancelled.
  void Watch(runtime::IoWatch* watch) override { deadline_->Watch(watch); }
  // Sends `request` (its framing headers set by the caller) and reads the final response head
  // into `out` (interim 1xx responses go to request.interim, or are skipped). On an error,
  // may_retry() tells whether it is the keep-alive race: the connection was a reused one and
  // failed before any response byte, neither by the deadline nor by a cancellation.
  Task<Result<void>> Run(const Request& request, Response& out) override;
  bool may_retry() const override { return may_retry_; }
  // Once the head is here: the body's end ends the request in flight (and counts a success).
  void TakeInFlight(InFlight in_flight) override { in_flight_ = std::move(in_flight); }
  // An empty body is over with its head: the connection goes back at once.
  void FinishIfEmpty() override {
    if (parser_.message_done() && !done_ && !upgraded_) Finish();
  }

  // --- BodyReader::Source
  const http::Headers* trailers() const override {
    return parser_.message_done() ? parser_.trailers() : nullptr;
  }
  Task<Result<std::string_view>> Read() override;
  std::optional<Result<std::string_view>> TryRead() override { return Step(); }
  bool done() const override { return done_; }
  std::optional<std::uint64_t> length() const override { return length_; }
  // A 101's connection: the one place an upstream connection leaves the exchange's framing.
  Upgraded TakeUpgraded() override;

 private:
  // Read without I/O: a piece, the end, an error, or nullopt when the socket must be read.
  std::optional<Result<std::string_view>> Step();
  void Finish();
  Error Failed(Error error);
  Error IoError(const error_code& ec, std::string_view what);
  Error Protocol(std::string_view why);
  // The request's watch aborted the try (checked before each I/O: an abort can come while no
  // I/O is pending).
  std::optional<Error> Aborted(const Request& request) const;

  StreamPool::Lease lease_;
  std::shared_ptr<runtime::BufferPool> buffers_;
  InFlight in_flight_;
  runtime::ReadBuffer in_;
  http::Parser parser_;
  std::optional<runtime::Deadline<runtime::Stream>> deadline_;
  std::optional<std::uint64_t> length_;
  std::optional<Error> error_;
  std::size_t next_chunk_ = 0;  // body_chunks() handed out so far
  std::size_t consumed_ = 0;    // bytes of in_ the parser took for those chunks
  bool keep_alive_ = false;
  bool eof_ = false;
  bool done_ = false;
  bool may_retry_ = false;
  bool upgraded_ = false;  // the response is a 101: the connection never goes back to the pool
};

}  // namespace ferry::upstream
