// The `idempotency` filter (Issue 12, the IETF Idempotency-Key draft): on a route with
// `idempotency:`, a request that carries the key header runs on the upstream once; a repeat
// gets the first response again (marked `idempotency-replayed: true`), 409 while the first
// runs, 422 when the key comes with another request. docs/idempotency.md says it all for users.
// The filter reads the request body (for the fingerprint) and waits for the store (off the
// event loop, async_store.hpp); it follows the exchange to its end with a ResponseObserver to
// store the response, or to drop the marker when there is none to store.
// Thread safety: const and shared by all workers, like every filter.
#pragma once

#include <cstdint>
#include <memory>

#include "idempotency/async_store.hpp"
#include "observability/metric_series.hpp"
#include "proxy/filter_wait.hpp"

namespace ferry::idempotency {

// The counters of one route.
struct FilterSeries {
  observability::Counter* replays = nullptr;
  observability::Counter* in_use = nullptr;
  observability::Counter* mismatch = nullptr;
  observability::Counter* outcome_unknown = nullptr;
};

class IdempotencyFilter final : public proxy::WaitingFilter {
 public:
  // The body a fingerprint reads: a larger request on the route gets 413.
  static constexpr std::uint64_t kMaxRequestBody = 10 * 1024 * 1024;

  // store null: no store is open (a keyed request gets 503). lease: how long a marker holds
  // off repeats with 409 before its outcome counts as unknown.
  IdempotencyFilter(const config::Route& route, std::shared_ptr<AsyncStore> store,
                    FilterSeries series);

  std::string_view name() const override { return "idempotency"; }
  std::uint64_t body_limit() const override { return kMaxRequestBody; }
  proxy::Verdict OnRequest(proxy::FilterContext& context) const override;
  Task<proxy::Verdict> Wait(proxy::FilterContext& context) const override;

 private:
  std::string route_name_;
  config::Idempotency settings_;
  Duration lease_;
  std::shared_ptr<AsyncStore> store_;
  FilterSeries series_;
};

// The factory (proxy/filter_registry.cpp): a filter on routes with `idempotency:`, on the
// node's store (node_store.hpp).
std::unique_ptr<const proxy::Filter> MakeIdempotency(const config::Route& route,
                                                     const config::Config& config);

}  // namespace ferry::idempotency
