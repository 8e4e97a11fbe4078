// A route's JWT authentication (`auth: {jwt: NAME}`): the token is read from
// `Authorization: Bearer` (the scheme case-insensitive, RFC 6750 section 2.1) or, when there is
// none, from the provider's cookie, and checked by the provider (src/auth: signature with a
// JWKS key or the HMAC secret, algorithm, exp, nbf, iss, aud). Answers:
//   no token              401 jwt_missing, WWW-Authenticate: Bearer realm="NAME"
//   a token that fails    401 jwt_invalid, WWW-Authenticate: Bearer realm="NAME",
//                         error="invalid_token", error_description="why" (RFC 6750 section 3)
//   no JWKS loaded yet    503 jwks_unavailable
// A valid token lets the request go on with the provider's forward_claims set as headers (the
// client's own copies removed first), the Authorization header and cookie left as they are
// (the upstream may relay the token), and the caller's claims in CallerIdentity for the
// authorization step. An unknown kid asks the JWKS updater for an early re-fetch.
// Decides at once (verification is CPU work on the worker) and reads no body. Each outcome is
// counted in ferry_jwt_verifications_total{provider,result}.
#pragma once

#include <array>
#include <memory>

#include "auth/provider.hpp"
#include "proxy/filter.hpp"

namespace ferry::observability {
class Counter;
}

namespace ferry::proxy::filters {

class JwtFilter final : public Filter {
 public:
  explicit JwtFilter(std::shared_ptr<auth::Provider> provider);
  std::string_view name() const override { return "jwt"; }
  Verdict OnRequest(FilterContext& context) const override;

  // Outcomes, the `result` label: ok, missing, jwks_unavailable, then one per auth::JwtError.
  static constexpr std::size_t kOutcomes = 3 + auth::kJwtErrorCount;

 private:
  void Count(FilterContext& context, std::size_t outcome) const;

  std::shared_ptr<auth::Provider> provider_;
  std::array<observability::Counter*, kOutcomes> counters_{};
};

// The factory (filter_registry.cpp): a filter for routes with `auth: {jwt: NAME}`, else none.
std::unique_ptr<const Filter> MakeJwt(const config::Route& route, const config::Config& config);

}  // namespace ferry::proxy::filters
