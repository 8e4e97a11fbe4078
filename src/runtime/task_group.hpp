// The owner of spawned coroutines, in place of co_spawn(..., detached): every task has an
// owner that can cancel it and wait for it. Spawn starts a task; CancelAll sends each running
// task Asio's terminal cancellation (the operation it waits on ends with operation_aborted;
// the task should then return); Wait completes once no task runs. A task that throws is a bug:
// the exception is logged and the task counts as done.
// Cancellation does not throw: tasks run with throw_if_cancelled(false), so a cancelled task
// sees error codes (kNoThrow) and ends on its own path.
// Lifetime: the group may be destroyed while tasks run (their bookkeeping is shared); the
// tasks themselves must not use the group, or anything it guards, after that.
// Thread safety: one group per event loop; call everything on that loop's thread.
#pragma once

#include <cstddef>
#include <memory>

#include "runtime/asio.hpp"

namespace ferry::runtime {

class TaskGroup {
 public:
  explicit TaskGroup(asio::any_io_executor executor);
  ~TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;

  void Spawn(Task<void> task);
  // Cancels every running task (not those spawned afterwards).
  void CancelAll();
  // Completes when no task runs (at once if none does). Not from a task of this group.
  Task<void> Wait();
  std::size_t size() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace ferry::runtime
