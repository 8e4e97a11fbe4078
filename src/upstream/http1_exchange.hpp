// Internal to src/upstream: one HTTP/1.1 exchange on a leased connection, with the codec of
// src/http (serializer for the head, HeadScanner and Parser for the response). Cluster::Send
// calls it once per attempt; an HTTP/2 exchange would sit beside it, on a shared connection.
// Thread safety: the event loop of the lease's pool.
#pragma once

#include <chrono>
#include <memory>

#include "core/clock.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"
#include "runtime/buffer_pool.hpp"
#include "upstream/endpoint.hpp"
#include "upstream/exchange.hpp"
#include "upstream/stream_pool.hpp"

namespace ferry::upstream {

struct AttemptResult {
  Result<Response> response = Fail(ErrorCode::kInternal, "no attempt");
  // The connection was a reused one and failed before any response byte, neither by the
  // deadline nor by a cancellation: the keep-alive race, worth one try on a fresh connection
  // if the request can be sent again.
  bool may_retry = false;
};

// Sends `request` (its framing headers set by the caller) on the lease's connection and reads
// the response head (interim 1xx responses skipped). On success the response's body reader
// takes over the lease and the in-flight count, and releases both when the body ends (or is
// destroyed). `deadline` (on `clock`) bounds the whole exchange, body reading included.
Task<AttemptResult> ExchangeHttp1(asio::io_context& io, StreamPool::Lease& lease,
                                  const Request& request,
                                  std::chrono::steady_clock::time_point deadline,
                                  const Clock& clock,
                                  const std::shared_ptr<runtime::BufferPool>& buffers,
                                  InFlight& in_flight);

}  // namespace ferry::upstream
