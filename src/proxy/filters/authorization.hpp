// The authorization step of a route some rule of `authorization:` applies to
// (access/authz_policy.hpp). It runs after the authentication filters, on what they verified
// (FilterContext::caller: the mesh peer, the API key's name, the JWT's claims), and on the
// request's path (as sent upstream) and method. A request the rules deny gets 403 `forbidden`;
// each decision is counted in ferry_authz_decisions_total{route,decision} and logged at debug
// level with the rule that made it. It decides at once and reads no body.
#pragma once

#include <memory>
#include <string>

#include "access/authz_policy.hpp"
#include "config/config.hpp"
#include "observability/metric_series.hpp"
#include "proxy/filter.hpp"

namespace ferry::proxy::filters {

class AuthorizationFilter final : public Filter {
 public:
  // allowed and denied: the route's counters (null: not counted).
  AuthorizationFilter(access::AuthzPolicy policy, std::string route,
                      observability::Counter* allowed, observability::Counter* denied);
  std::string_view name() const override { return "authorization"; }
  Verdict OnRequest(FilterContext& context) const override;

 private:
  access::AuthzPolicy policy_;
  std::string route_;
  observability::Counter* allowed_;
  observability::Counter* denied_;
};

// The factory (filter_registry.cpp): a filter for routes some rule applies to, else none.
std::unique_ptr<const Filter> MakeAuthorization(const config::Route& route,
                                                const config::Config& config);

}  // namespace ferry::proxy::filters
