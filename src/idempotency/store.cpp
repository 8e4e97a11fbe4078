#include "idempotency/store.hpp"

#include "idempotency/lmdb_store.hpp"
#include "idempotency/redis_store.hpp"

namespace ferry::idempotency {

Result<std::shared_ptr<Store>> OpenStore(const config::IdempotencyStore& config) {
  if (config.redis) {
    auto store = RedisStore::Open(*config.redis);
    if (!store) return tl::unexpected(store.error());
    return std::shared_ptr<Store>(std::move(*store));
  }
  auto store = LmdbStore::Open(config.data_dir);
  if (!store) return tl::unexpected(store.error());
  return std::shared_ptr<Store>(std::move(*store));
}

}  // namespace ferry::idempotency
