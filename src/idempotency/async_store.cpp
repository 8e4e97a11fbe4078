#include "idempotency/async_store.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/thread_pool.hpp>

namespace ferry::idempotency {

struct AsyncStore::Pool {
  explicit Pool(std::size_t threads) : pool(threads) {}
  asio::thread_pool pool;
};

namespace {

constexpr std::int64_t kPurgeEveryMs = 60'000;

// Runs fn() (moved from) on the pool; the awaiting coroutine resumes on its own executor with
// the value. (fn is the caller's named local: no temporaries with destructors in co_await.)
template <typename T, typename Fn>
Task<T> OffLoop(asio::thread_pool& pool, Fn& fn) {
  auto initiate = [&pool, &fn](auto handler) {
    asio::post(pool, [handler = std::move(handler), fn = std::move(fn)]() mutable {
      T value = fn();
      auto executor = asio::get_associated_executor(handler);
      asio::post(executor, [handler = std::move(handler), value = std::move(value)]() mutable {
        std::move(handler)(std::move(value));
      });
    });
  };
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      initiate, asio::use_awaitable);
}

}  // namespace

AsyncStore::AsyncStore(std::shared_ptr<Store> store, std::size_t threads)
    : store_(std::move(store)), pool_(std::make_unique<Pool>(threads)) {}

AsyncStore::~AsyncStore() { pool_->pool.join(); }

Task<Result<BeginResult>> AsyncStore::Begin(const std::string& key, const Record& marker,
                                            std::int64_t now_ms) {
  Store* store = store_.get();
  auto call = [store, key, marker, now_ms] { return store->Begin(key, marker, now_ms); };
  co_return co_await OffLoop<Result<BeginResult>>(pool_->pool, call);
}

Task<Result<bool>> AsyncStore::Complete(const std::string& key, const Record& done) {
  Store* store = store_.get();
  auto call = [store, key, done] { return store->Complete(key, done); };
  co_return co_await OffLoop<Result<bool>>(pool_->pool, call);
}

Task<Result<bool>> AsyncStore::Abandon(const std::string& key, std::uint64_t token) {
  Store* store = store_.get();
  auto call = [store, key, token] { return store->Abandon(key, token); };
  co_return co_await OffLoop<Result<bool>>(pool_->pool, call);
}

void AsyncStore::MaybePurge(std::int64_t now_ms) {
  std::int64_t last = last_purge_ms_.load(std::memory_order_relaxed);
  if (now_ms - last < kPurgeEveryMs) return;
  if (!last_purge_ms_.compare_exchange_strong(last, now_ms)) return;  // another worker does it
  asio::post(pool_->pool, [store = store_, now_ms] {
    auto purged = store->Purge(now_ms);
    if (!purged) {
      spdlog::warn("idempotency: purging expired keys failed: {}", purged.error().message());
    } else if (*purged > 0) {
      spdlog::debug("idempotency: purged {} expired key(s)", *purged);
    }
  });
}

}  // namespace ferry::idempotency
