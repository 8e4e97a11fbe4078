// Internal to src/upstream: what Cluster::Send needs of one try's exchange, whatever the HTTP
// version: Http1Exchange (a connection of its own) and Http2Exchange (a stream on a shared
// connection) implement it. After Run it is the response's body source.
// Thread safety: the event loop of the lease's pool.
#pragma once

#include <chrono>

#include "core/result.hpp"
#include "runtime/asio.hpp"
#include "upstream/endpoint.hpp"
#include "upstream/exchange.hpp"

namespace ferry::runtime {
class IoWatch;
}

namespace ferry::upstream {

class ProtocolExchange : public BodyReader::Source {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  // Arms the deadline (`now` read on the caller's clock; TimePoint::max(): none); false if it
  // has passed.
  virtual bool Arm(TimePoint deadline, TimePoint now) = 0;
  // Lets `watch` (null: none) watch the try until the response head: its Abort ends Run with
  // kCancelled.
  virtual void Watch(runtime::IoWatch* watch) = 0;
  // Sends `request` (its framing headers set by the caller) and reads the final response head
  // into `out`.
  virtual Task<Result<void>> Run(const Request& request, Response& out) = 0;
  // After a failed Run: the request may go again on another connection (the keep-alive race,
  // or a stream the server refused unprocessed).
  virtual bool may_retry() const = 0;
  // The server provably did not process it (HTTP/2 REFUSED_STREAM, or above a GOAWAY's
  // last-stream-id): it may go again even if the method is not idempotent.
  virtual bool unprocessed() const { return false; }
  // Once the head is here: the body's end ends the request in flight (and counts a success).
  virtual void TakeInFlight(InFlight in_flight) = 0;
  // An empty body is over with its head: the connection goes back at once.
  virtual void FinishIfEmpty() = 0;
};

// Arm's rule for every protocol: arms `timer` (a runtime::Deadline) for what is left until
// `deadline` (`now` on the caller's clock); TimePoint::max() disarms it (none, or no more: a
// try timeout ended with the head). False if the deadline has passed.
template <typename Timer>
bool ArmUntil(Timer& timer, ProtocolExchange::TimePoint deadline, ProtocolExchange::TimePoint now) {
  if (deadline == ProtocolExchange::TimePoint::max()) {
    timer.Disarm();
    return true;
  }
  const auto left = deadline - now;
  if (left.count() <= 0) return false;
  timer.Arm(std::chrono::duration_cast<std::chrono::nanoseconds>(left));
  return true;
}

}  // namespace ferry::upstream
