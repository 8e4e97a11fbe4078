// A worker: one thread running one single-threaded io_context. Connections accepted on a worker
// live on it until they close, so per-connection and per-worker state needs no locks.
// Thread safety: Post() may be called from any thread; everything else from the owner thread.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <thread>

#include "runtime/asio.hpp"

namespace ferry::runtime {

class Worker {
 public:
  explicit Worker(int id);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Starts the thread; the loop runs until Stop() and then until its work is done.
  void Start();
  // Lets the loop end once no work is left (open connections keep it running).
  void ReleaseWork();
  // Ends the loop now, abandoning pending work.
  void Stop();
  void Join();

  void Post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }
  asio::io_context& io() { return io_; }
  int id() const { return id_; }

 private:
  int id_;
  asio::io_context io_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
};

}  // namespace ferry::runtime
