// A deadline over the I/O of one socket: when it passes, the socket's pending operations are
// cancelled and expired() turns true, so the coroutine waiting on them wakes with
// operation_aborted and can tell a timeout from a peer failure. One timer per socket, re-armed
// per phase (header read, idle, upstream response), never one per operation.
// A timer handler may already be queued when the deadline is re-armed or destroyed; the shared
// state and its generation number make such a stale handler a no-op. The handler captures
// `this` only to re-wait, which it does only while state->socket is set, i.e. while the
// Deadline exists.
// A Deadline may also watch an IoWatch (io_watch.hpp): the watch's Abort then cancels this
// socket (its notice comes from the worker's NoticeBoard, not from this timer).
// Thread safety: owned by one coroutine on one worker.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>

#include "runtime/asio.hpp"
#include "runtime/io_watch.hpp"

namespace ferry::runtime {

template <typename Socket>
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  Deadline(asio::io_context& io, Socket& socket)
      : timer_(io), state_(std::make_shared<State>(State{&socket})) {}
  ~Deadline() {
    if (state_->watch != nullptr) state_->watch->Detach(state_->socket);
    state_->socket = nullptr;
    state_->watch = nullptr;
    timer_.cancel();
  }
  Deadline(const Deadline&) = delete;
  Deadline& operator=(const Deadline&) = delete;

  // Arms (or re-arms) the deadline `d` from now; zero or less disarms it. Re-arming to a later
  // time leaves the pending timer alone (when it fires early it waits again for the rest), so
  // the usual per-request phases cost no timer cancellation and no new wait.
  void Arm(std::chrono::nanoseconds d) {
    state_->expired = false;
    if (d.count() <= 0) {
      Disarm();
      return;
    }
    state_->deadline = Clock::now() + d;
    Schedule();
  }
  // Watches `watch` (null: stops watching): its Abort cancels this socket.
  void Watch(IoWatch* watch) {
    State& st = *state_;
    if (st.watch != nullptr) st.watch->Detach(st.socket);
    st.watch = watch;
    if (watch == nullptr) return;
    watch->Attach(st.socket, [](void* socket) {
      error_code ignored;
      static_cast<Socket*>(socket)->cancel(ignored);
    });
  }
  void Disarm() { state_->deadline = Clock::time_point::max(); }
  bool expired() const { return state_->expired; }

 private:
  struct State {
    Socket* socket;
    Clock::time_point deadline = Clock::time_point::max();  // max: disarmed
    Clock::time_point wait_until{};                         // when the pending wait ends
    std::uint64_t generation = 0;                           // of the pending wait
    IoWatch* watch = nullptr;                               // its Abort cancels the socket
    bool waiting = false;
    bool expired = false;
  };

  // Makes the pending wait end no later than the deadline.
  void Schedule() {
    State& st = *state_;
    const Clock::time_point at = st.deadline;
    if (at == Clock::time_point::max()) return;  // nothing to wake for (a stale wait is harmless)
    if (st.waiting && st.wait_until <= at) return;  // fires early, then re-waits
    if (st.waiting) timer_.cancel();                // the new time is earlier: start over
    Wait(at);
  }

  void Wait(Clock::time_point at) {
    State& st = *state_;
    st.waiting = true;
    st.wait_until = at;
    const std::uint64_t generation = ++st.generation;
    timer_.expires_at(at);
    timer_.async_wait([this, state = state_, generation](const error_code&) {
      if (state->generation != generation) return;  // superseded by a newer wait
      state->waiting = false;
      if (state->socket == nullptr) return;  // the Deadline is gone
      const Clock::time_point now = Clock::now();
      const Clock::time_point next = state->deadline;
      if (next == Clock::time_point::max()) return;  // disarmed
      if (now < next) {
        Wait(next);  // re-armed later meanwhile: the rest
        return;
      }
      state->expired = true;
      error_code ignored;
      state->socket->cancel(ignored);
    });
  }

  asio::steady_timer timer_;
  std::shared_ptr<State> state_;
};

}  // namespace ferry::runtime
