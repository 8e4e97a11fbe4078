// A Store for the event loops: each call runs on a small thread pool of its own (the store
// blocks on an fsync or a round trip) and the calling coroutine resumes on its own executor
// (the worker) with the result. Expired records are purged on the pool, at most once a minute.
// Ownership: shared by every route's filter of every snapshot that uses the node's store; the
// destructor waits for calls already queued.
// Thread safety: any worker may call it at once.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "idempotency/store.hpp"
#include "runtime/asio.hpp"

namespace ferry::idempotency {

class AsyncStore {
 public:
  // Each call's arguments are the caller's: they must outlive its co_await.
  explicit AsyncStore(std::shared_ptr<Store> store, std::size_t threads = 2);
  ~AsyncStore();
  AsyncStore(const AsyncStore&) = delete;
  AsyncStore& operator=(const AsyncStore&) = delete;

  Task<Result<BeginResult>> Begin(const std::string& key, const Record& marker,
                                  std::int64_t now_ms);
  Task<Result<bool>> Complete(const std::string& key, const Record& done);
  Task<Result<bool>> Abandon(const std::string& key, std::uint64_t token);
  // Queues a purge when the last one was a minute or more ago; does not wait for it.
  void MaybePurge(std::int64_t now_ms);

 private:
  struct Pool;
  std::shared_ptr<Store> store_;
  std::unique_ptr<Pool> pool_;
  std::atomic<std::int64_t> last_purge_ms_{0};
};

}  // namespace ferry::idempotency
