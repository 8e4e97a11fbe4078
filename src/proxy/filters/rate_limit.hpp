// A route's rate limit (`rate_limit: {rps, burst, by}`): a token bucket per node — shared by
// all workers, so `rps: 5` is 5 per second for the node — for the whole route, or one per
// client address or header value. A request over the limit gets 429 `rate_limited` with a
// Retry-After (whole seconds until a token is there, at least 1) and never reaches the
// upstream. Requests without the `by` header share one bucket. The buckets live across config
// reloads while the route keeps its name and limit. It decides at once and reads no body.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "proxy/filter.hpp"

namespace ferry::proxy::filters {

class TokenBucket;

class RateLimitFilter final : public Filter {
 public:
  RateLimitFilter(config::RateLimit limit, std::shared_ptr<TokenBucket> bucket);
  std::string_view name() const override { return "rate_limit"; }
  Verdict OnRequest(FilterContext& context) const override;

 private:
  config::RateLimit limit_;
  std::shared_ptr<TokenBucket> bucket_;
};

// The factory (filter_registry.cpp): a filter for routes with `rate_limit`, else none.
std::unique_ptr<const Filter> MakeRateLimit(const config::Route& route,
                                            const config::Config& config);

}  // namespace ferry::proxy::filters
