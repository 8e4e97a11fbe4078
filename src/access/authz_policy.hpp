// The authorization rules (`authorization:`) as they apply to one route or bus API operation:
// the rules that name it (or name no route), in order; the first whose every set field matches
// decides; no match gives the default (deny unless `default: allow`). The proxy's
// authorization filter and the bus API both decide through it.
// Thread safety: immutable once built; Decide is const.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace ferry::access {

// What a rule can match, about one request.
struct AuthzRequest {
  std::string_view path;  // as sent upstream (after the route's rewrite_prefix)
  std::string_view method;
  std::string_view peer;     // verified SPIFFE ID of the mesh client, "" if none
  std::string_view api_key;  // name of the API key that authenticated, "" if none
  // The verified JWT's claims (string, number, boolean as text; one pair per array element).
  const std::vector<std::pair<std::string, std::string>>* claims = nullptr;
};

struct AuthzDecision {
  bool allow = false;
  int rule = -1;  // 0-based index in `authorization.rules` of the rule that decided; -1: default
};

class AuthzPolicy {
 public:
  // The rules of `authorization` that apply to `route` (a route name or a bus operation).
  AuthzPolicy(const config::Authorization& authorization, std::string_view route);

  // Some rule applies: requests on the route are decided here. (None: no authorization step.)
  bool applies() const { return !rules_.empty(); }
  AuthzDecision Decide(const AuthzRequest& request) const;
  // "rule 3 (deny)" or "no rule matched (default deny)", for logs.
  static std::string Describe(const AuthzDecision& decision);

 private:
  bool Matches(const config::AuthzRule& rule, const AuthzRequest& request) const;

  config::Authorization authorization_;  // a copy: the policy needs no config to outlive it
  std::vector<int> rules_;               // indexes of the rules that apply, in order
};

// A pattern of `callers` or `paths`: exact, or a prefix when it ends with '*'.
bool MatchesPattern(std::string_view pattern, std::string_view value);

}  // namespace ferry::access
