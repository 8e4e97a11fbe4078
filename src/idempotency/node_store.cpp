#include "idempotency/node_store.hpp"

#include <spdlog/spdlog.h>

#include <mutex>

namespace ferry::idempotency {
namespace {

struct Current {
  std::mutex mutex;
  NodeStore node;
  std::string where;  // what the open store is ("data_dir X", "redis H:P")
};

Current& State() {
  static Current current;
  return current;
}

std::string Where(const config::IdempotencyStore& s) {
  return s.redis ? "redis " + s.redis->ToString() : "data_dir " + s.data_dir;
}

}  // namespace

Result<void> ConfigureNodeStore(const config::Config& config,
                                observability::MetricsRegistry& registry) {
  Current& current = State();
  std::lock_guard lock(current.mutex);
  if (current.node.replays == nullptr) {
    auto replays = registry.AddCounter(
        "ferry_idempotency_replays_total",
        "Requests answered with the stored response of an earlier request with the same key.",
        {"route"});
    if (!replays) return tl::unexpected(replays.error());
    auto conflicts = registry.AddCounter(
        "ferry_idempotency_conflicts_total",
        "Requests with a key refused: in_use (409, the first is running), mismatch (422, the "
        "key was used with another request), outcome_unknown (409, the first one's node died "
        "mid-request).",
        {"route", "reason"});
    if (!conflicts) return tl::unexpected(conflicts.error());
    current.node.replays = *replays;
    current.node.conflicts = *conflicts;
  }
  if (!config.idempotency_store) {
    current.node.store.reset();
    current.where.clear();
    return Ok();
  }
  const std::string where = Where(*config.idempotency_store);
  if (current.node.store && where == current.where) return Ok();
  auto store = OpenStore(*config.idempotency_store);
  if (!store) return tl::unexpected(store.error());
  current.node.store = std::make_shared<AsyncStore>(std::move(*store));
  current.where = where;
  spdlog::info("idempotency store: {}", where);
  return Ok();
}

NodeStore NodeStoreNow() {
  Current& current = State();
  std::lock_guard lock(current.mutex);
  return current.node;
}

void CloseNodeStore() {
  Current& current = State();
  std::lock_guard lock(current.mutex);
  current.node.store.reset();
  current.where.clear();
}

}  // namespace ferry::idempotency
