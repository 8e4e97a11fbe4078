#include "access/authz_policy.hpp"

#include <fmt/format.h>

#include <algorithm>

namespace ferry::access {

bool MatchesPattern(std::string_view pattern, std::string_view value) {
  if (!pattern.empty() && pattern.back() == '*') {
    return value.starts_with(pattern.substr(0, pattern.size() - 1));
  }
  return pattern == value;
}

AuthzPolicy::AuthzPolicy(const config::Authorization& authorization, std::string_view route)
    : authorization_(authorization) {
  for (std::size_t i = 0; i < authorization_.rules.size(); ++i) {
    const config::AuthzRule& rule = authorization_.rules[i];
    const bool names_it =
        std::find(rule.routes.begin(), rule.routes.end(), route) != rule.routes.end();
    if (rule.routes.empty() || names_it) rules_.push_back(static_cast<int>(i));
  }
}

bool AuthzPolicy::Matches(const config::AuthzRule& rule, const AuthzRequest& request) const {
  if (!rule.methods.empty() &&
      std::find(rule.methods.begin(), rule.methods.end(), request.method) == rule.methods.end()) {
    return false;
  }
  if (!rule.paths.empty() &&
      std::none_of(rule.paths.begin(), rule.paths.end(),
                   [&](const std::string& p) { return MatchesPattern(p, request.path); })) {
    return false;
  }
  // A caller is whoever was verified: the mesh peer, the API key's holder, or both.
  if (!rule.callers.empty() &&
      std::none_of(rule.callers.begin(), rule.callers.end(), [&](const std::string& c) {
        return (!request.peer.empty() && MatchesPattern(c, request.peer)) ||
               (!request.api_key.empty() && MatchesPattern(c, request.api_key));
      })) {
    return false;
  }
  for (const auto& [name, value] : rule.claims) {
    if (request.claims == nullptr) return false;
    const bool held = std::any_of(
        request.claims->begin(), request.claims->end(),
        [&](const auto& claim) { return claim.first == name && claim.second == value; });
    if (!held) return false;
  }
  return true;
}

AuthzDecision AuthzPolicy::Decide(const AuthzRequest& request) const {
  for (const int index : rules_) {
    const config::AuthzRule& rule = authorization_.rules[static_cast<std::size_t>(index)];
    if (Matches(rule, request)) return AuthzDecision{rule.allow, index};
  }
  return AuthzDecision{authorization_.default_allow, -1};
}

std::string AuthzPolicy::Describe(const AuthzDecision& decision) {
  if (decision.rule < 0) {
    return fmt::format("no rule matched (default {})", decision.allow ? "allow" : "deny");
  }
  return fmt::format("rule {} ({})", decision.rule, decision.allow ? "allow" : "deny");
}

}  // namespace ferry::access
