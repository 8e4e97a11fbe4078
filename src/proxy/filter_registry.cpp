#include "proxy/filter_registry.hpp"

#include "idempotency/idempotency_filter.hpp"
#include "proxy/filters/api_keys.hpp"
#include "proxy/filters/authorization.hpp"
#include "proxy/filters/cors.hpp"
#include "proxy/filters/fault.hpp"
#include "proxy/filters/forwarding.hpp"
#include "proxy/filters/jwt.hpp"
#include "proxy/filters/rate_limit.hpp"

namespace ferry::proxy {

void FilterChain::Add(std::unique_ptr<const Filter> filter) {
  const std::uint64_t limit = filter->body_limit();
  if (limit != 0 && (body_limit_ == 0 || limit < body_limit_)) {
    body_limit_ = limit;
    body_reader_ = filter.get();
  }
  filters_.push_back(std::move(filter));
}

std::span<const FilterFactory> BuiltinFilters() {
  static constexpr FilterFactory kFactories[] = {
      {"forwarding", &filters::MakeForwarding},  // every route
      {"cors", &filters::MakeCors},              // first to answer: preflights carry no credentials
      {"rate_limit", &filters::MakeRateLimit},   // before anything that costs
      {"jwt", &filters::MakeJwt},                // authentication, before what needs a caller
      {"api_keys", &filters::MakeApiKeys},       // authentication too: a route with both needs both
      {"authorization", &filters::MakeAuthorization},  // on what authentication verified
      {"fault", &filters::MakeFault},
      {"idempotency", &idempotency::MakeIdempotency},  // last: it writes a marker
  };
  return kFactories;
}

FilterChain BuildFilterChain(const config::Route& route, const config::Config& config,
                             std::span<const FilterFactory> factories) {
  FilterChain chain;
  for (const FilterFactory& factory : factories) {
    if (auto filter = factory.create(route, config)) chain.Add(std::move(filter));
  }
  return chain;
}

}  // namespace ferry::proxy
