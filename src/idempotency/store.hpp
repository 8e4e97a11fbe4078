// Where idempotency records live: the blocking interface both stores implement (the embedded
// LMDB store, lmdb_store.hpp; the Redis store, redis_store.hpp), and OpenStore, which opens the
// one the config names. Calls block (an fsync, a round trip): the request path reaches them
// only through AsyncStore (async_store.hpp), on its threads.
// Thread safety: every method may be called from several threads at once.
// Errors: Result; a store that cannot be reached or read gives kIo or kUnavailable, a full one
// kNoSpace.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/result.hpp"
#include "idempotency/record.hpp"

namespace ferry::idempotency {

class Store {
 public:
  virtual ~Store() = default;
  // What a request gets for `key` (Decide); on kStarted the store holds `marker` (an in-flight
  // record), durably (committed and synced) before Begin returns.
  virtual Result<BeginResult> Begin(std::string_view key, const Record& marker,
                                    std::int64_t now_ms) = 0;
  // Replaces the marker with the finished record `done` if the key still holds the marker with
  // done.token (false: it does not, and nothing changed).
  virtual Result<bool> Complete(std::string_view key, const Record& done) = 0;
  // Removes the marker with this token (the response was not stored, so the client may try
  // again); false if the key holds no such marker.
  virtual Result<bool> Abandon(std::string_view key, std::uint64_t token) = 0;
  // Removes the records expired at now_ms; returns how many. (Redis expires its own.)
  virtual Result<std::size_t> Purge(std::int64_t now_ms) = 0;
};

// The store `config` names: data_dir (LMDB, created if missing) or redis (connects now, to
// report an unreachable server at start).
Result<std::shared_ptr<Store>> OpenStore(const config::IdempotencyStore& config);

}  // namespace ferry::idempotency
