#include "runtime/task_group.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/this_coro.hpp>
#include <exception>
#include <list>

namespace ferry::runtime {

struct TaskGroup::State {
  explicit State(asio::any_io_executor ex)
      : executor(ex), idle(ex, asio::steady_timer::time_point::max()) {}
  asio::any_io_executor executor;
  struct Entry {
    asio::cancellation_signal signal;
    bool done = false;  // ended; erased once its completion handler has returned
  };
  std::list<Entry> tasks;
  std::size_t running = 0;
  asio::steady_timer idle;                     // Wait()ers wait on it; cancelled when empty
};

namespace {

// Runs `task` with cancellation that ends operations rather than throwing.
Task<void> Guarded(Task<void> task) {
  co_await asio::this_coro::throw_if_cancelled(false);
  co_await std::move(task);
}

}  // namespace

TaskGroup::TaskGroup(asio::any_io_executor executor)
    : state_(std::make_shared<State>(std::move(executor))) {}

TaskGroup::~TaskGroup() { CancelAll(); }

void TaskGroup::Spawn(Task<void> task) {
  State& st = *state_;
  st.tasks.emplace_back();
  ++st.running;
  auto it = std::prev(st.tasks.end());
  asio::co_spawn(
      st.executor, Guarded(std::move(task)),
      asio::bind_cancellation_slot(it->signal.slot(), [state = state_, it](std::exception_ptr e) {
        if (e) {
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            spdlog::error("a task ended with an exception: {}", ex.what());
          } catch (...) {
            spdlog::error("a task ended with an unknown exception");
          }
        }
        // The signal outlives its operation: it goes after this handler has returned, and is
        // never emitted again (what it reached is gone).
        it->done = true;
        if (--state->running == 0) state->idle.cancel();
        asio::post(state->executor, [state, it] { state->tasks.erase(it); });
      }));
}

void TaskGroup::CancelAll() {
  // A task that ends now erases its entry later (posted), so iterating here is safe.
  for (State::Entry& e : state_->tasks) {
    if (!e.done) e.signal.emit(asio::cancellation_type::terminal);
  }
}

Task<void> TaskGroup::Wait() {
  const std::shared_ptr<State> state = state_;
  while (state->running > 0) co_await state->idle.async_wait(kNoThrow);
}

std::size_t TaskGroup::size() const { return state_->running; }

}  // namespace ferry::runtime
