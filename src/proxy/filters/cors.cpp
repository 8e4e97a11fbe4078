#include "proxy/filters/cors.hpp"

#include "proxy/local_reply.hpp"

namespace ferry::proxy::filters {

CorsFilter::CorsFilter(const config::Cors& cors, const config::Route& route)
    : policy_(cors, route.match.methods) {}

Verdict CorsFilter::OnRequest(FilterContext& context) const {
  if (!access::CorsPolicy::IsPreflight(context.request)) return Verdict::kContinue;
  LocalReply& reply = context.Answer(204, "cors_preflight");
  using Preflight = access::CorsPolicy::Preflight;
  const Preflight decision = policy_.AnswerPreflight(context.request.headers, reply.headers);
  if (decision == Preflight::kAllowed) return Verdict::kReply;
  const char* why = decision == Preflight::kOriginRejected   ? "the origin is not allowed"
                    : decision == Preflight::kMethodRejected ? "the method is not allowed"
                                                             : "a request header is not allowed";
  MakeErrorReply(context.reply, 403, "cors_rejected",
                 std::string("CORS preflight refused: ") + why + " on this route",
                 context.request_id);
  return Verdict::kReply;
}

void CorsFilter::OnResponse(FilterContext& context, http::ResponseHead& response) const {
  policy_.AddResponseHeaders(context.request.headers.Get("origin"), response.headers);
}

void CorsFilter::OnLocalReply(FilterContext& context, LocalReply& reply) const {
  // A preflight's own answer is whole already (and a refused one must stay without).
  if (reply.code == "cors_preflight" || reply.code == "cors_rejected") return;
  policy_.AddResponseHeaders(context.request.headers.Get("origin"), reply.headers);
}

std::unique_ptr<const Filter> MakeCors(const config::Route& route, const config::Config&) {
  if (!route.cors) return nullptr;
  return std::make_unique<CorsFilter>(*route.cors, route);
}

}  // namespace ferry::proxy::filters
