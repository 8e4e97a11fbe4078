#include "proxy/filters/authorization.hpp"

#include <spdlog/spdlog.h>

#include "access/authz_metrics.hpp"
#include "proxy/local_reply.hpp"

namespace ferry::proxy::filters {

AuthorizationFilter::AuthorizationFilter(access::AuthzPolicy policy, std::string route,
                                         observability::Counter* allowed,
                                         observability::Counter* denied)
    : policy_(std::move(policy)), route_(std::move(route)), allowed_(allowed), denied_(denied) {}

Verdict AuthorizationFilter::OnRequest(FilterContext& context) const {
  access::AuthzRequest request;
  request.path = context.request.path();
  request.method = context.request.method;
  request.peer = context.caller.peer;
  request.api_key = context.caller.api_key;
  if (context.caller.jwt) request.claims = &context.caller.claims;
  const access::AuthzDecision decision = policy_.Decide(request);
  observability::Counter* counter = decision.allow ? allowed_ : denied_;
  if (counter != nullptr) counter->Add(context.slot);
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("authorization: {} {} {} on route {} by caller peer='{}' api_key='{}' jwt={}: {}",
                  decision.allow ? "allowed" : "denied", request.method, request.path, route_,
                  request.peer, request.api_key, context.caller.jwt,
                  access::AuthzPolicy::Describe(decision));
  }
  if (decision.allow) return Verdict::kContinue;
  // The reply says no more than that: which rule refused is for the operator's log.
  MakeErrorReply(context.reply, 403, "forbidden",
                 "the authorization policy does not allow this request", context.request_id);
  return Verdict::kReply;
}

std::unique_ptr<const Filter> MakeAuthorization(const config::Route& route,
                                                const config::Config& config) {
  if (!config.authorization) return nullptr;
  access::AuthzPolicy policy(*config.authorization, route.name);
  if (!policy.applies()) return nullptr;
  observability::Counter* allowed = nullptr;
  observability::Counter* denied = nullptr;
  if (observability::CounterFamily* family = access::AuthzDecisionsFamily()) {
    allowed = &family->Get(route.name, "allow");
    denied = &family->Get(route.name, "deny");
  }
  return std::make_unique<AuthorizationFilter>(std::move(policy), route.name, allowed, denied);
}

}  // namespace ferry::proxy::filters
