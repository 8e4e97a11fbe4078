// The node's one idempotency store and its metric families, shared by every route's filter.
// The node (app/node.cpp) calls ConfigureNodeStore on the main thread at start and on each
// reload, before it builds the snapshot whose filter factories read it (NodeStoreNow): a
// store that stays configured the same stays open; another is opened (an error rejects the
// start or the reload). Snapshots that still use an old store keep it open until they go.
// Thread safety: all three functions take one mutex; call them from the main thread.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "core/result.hpp"
#include "idempotency/async_store.hpp"
#include "observability/metrics_registry.hpp"

namespace ferry::idempotency {

struct NodeStore {
  std::shared_ptr<AsyncStore> store;                  // null when none is configured
  observability::CounterFamily* replays = nullptr;    // {route}
  observability::CounterFamily* conflicts = nullptr;  // {route, reason}
};

Result<void> ConfigureNodeStore(const config::Config& config,
                                observability::MetricsRegistry& registry);
NodeStore NodeStoreNow();
// Lets go of the store (the node's end; snapshots may still hold it).
void CloseNodeStore();

}  // namespace ferry::idempotency
