// A deadline over the I/O of one socket: when it passes, the socket's pending operations are
// cancelled and expired() turns true, so the coroutine waiting on them wakes with
// operation_aborted and can tell a timeout from a peer failure. One timer per socket, re-armed
// per phase (header read, idle, upstream response), never one per operation.
// A timer handler may already be queued when the deadline is re-armed or destroyed; the shared
// state and its generation number make such a stale handler a no-op.
// Thread safety: owned by one coroutine on one worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "runtime/asio.hpp"

namespace ferry::runtime {

template <typename Socket>
class Deadline {
 public:
  Deadline(asio::io_context& io, Socket& socket)
      : timer_(io), state_(std::make_shared<State>(State{&socket})) {}
  ~Deadline() {
    state_->socket = nullptr;
    timer_.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Arms (or re-arms) the deadline `d` from now; zero or less disarms it.
  void Arm(std::chrono::nanoseconds d) {
    state_->expired = false;
    const std::uint64_t generation = ++state_->generation;
    if (d.count() <= 0) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(d);
    timer_.async_wait([state = state_, generation](const error_code& ec) {
      if (ec || state->generation != generation || state->socket == nullptr) return;
      state->expired = true;
      error_code ignored;
      state->socket->cancel(ignored);
    });
  }
  void Disarm() {
    ++state_->generation;
    timer_.cancel();
  }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    Socket* socket;
    std::uint64_t generation = 0;
    bool expired = false;
  };
  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

}  // namespace ferry::runtime
