// A route's CORS policy (`cors:`, access/cors_policy.hpp). It runs first on the route, so a
// preflight is answered before authentication (browsers send preflights without credentials):
// an allowed one gets 204 with the Access-Control-Allow-* headers; one whose origin, method or
// headers are not allowed gets 403 `cors_rejected` without CORS headers, which fails it in the
// browser. A request from an allowed origin goes on, and its response — the upstream's
// (OnResponse) or a local reply (OnLocalReply: a 401, a 429, a 502) — gets
// Access-Control-Allow-Origin, -Credentials, -Expose-Headers and Vary: Origin, so the page can
// read it. A request from another origin goes on untouched: CORS tells browsers what a page may
// read; it does not keep other clients out (authentication and authorization do).
// It decides at once and reads no body.
#pragma once

#include <memory>

#include "access/cors_policy.hpp"
#include "config/config.hpp"
#include "proxy/filter.hpp"

namespace ferry::proxy::filters {

class CorsFilter final : public Filter {
 public:
  CorsFilter(const config::Cors& cors, const config::Route& route);
  std::string_view name() const override { return "cors"; }
  Verdict OnRequest(FilterContext& context) const override;
  void OnResponse(FilterContext& context, http::ResponseHead& response) const override;
  void OnLocalReply(FilterContext& context, LocalReply& reply) const override;

 private:
  access::CorsPolicy policy_;
};

// The factory (filter_registry.cpp): a filter for routes with `cors`, else none.
std::unique_ptr<const Filter> MakeCors(const config::Route& route, const config::Config& config);

}  // namespace ferry::proxy::filters
