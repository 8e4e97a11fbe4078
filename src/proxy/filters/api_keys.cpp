#include "proxy/filters/api_keys.hpp"

#include <fmt/format.h>

#include "proxy/local_reply.hpp"

namespace ferry::proxy::filters {

ApiKeysFilter::ApiKeysFilter(const config::ApiKeys& keys)
    : check_(keys), challenge_(fmt::format("ApiKey header=\"{}\"", keys.header)) {}

Verdict ApiKeysFilter::OnRequest(FilterContext& context) const {
  const auto answer = check_.Check(context.request.headers.Get(check_.header()));
  if (answer.outcome == access::ApiKeyCheck::Outcome::kAccepted) {
    context.caller.api_key.assign(answer.name);
    context.request.headers.Remove(check_.header());
    return Verdict::kContinue;
  }
  const bool missing = answer.outcome == access::ApiKeyCheck::Outcome::kMissing;
  MakeErrorReply(context.reply, 401, missing ? "api_key_missing" : "api_key_invalid",
                 missing
                     ? fmt::format("this route needs an API key in the {} header", check_.header())
                     : std::string("the API key is not valid"),
                 context.request_id);
  context.reply.headers.Add("www-authenticate", challenge_);
  return Verdict::kReply;
}

std::unique_ptr<const Filter> MakeApiKeys(const config::Route& route, const config::Config&) {
  if (!route.api_keys) return nullptr;
  return std::make_unique<ApiKeysFilter>(*route.api_keys);
}

}  // namespace ferry::proxy::filters
