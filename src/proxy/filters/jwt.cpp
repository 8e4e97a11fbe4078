#include "proxy/filters/jwt.hpp"

#include <fmt/format.h>

#include <string>

#include "auth/bearer.hpp"
#include "auth/jwt_verifier.hpp"
#include "observability/metric_family.hpp"
#include "observability/metric_series.hpp"
#include "proxy/local_reply.hpp"

namespace ferry::proxy::filters {
namespace {

constexpr std::size_t kOk = 0;
constexpr std::size_t kMissing = 1;
constexpr std::size_t kUnavailable = 2;
constexpr std::size_t kFirstError = 3;  // + static_cast<size_t>(auth::JwtError)

std::string_view OutcomeName(std::size_t outcome) {
  if (outcome == kOk) return "ok";
  if (outcome == kMissing) return "missing";
  if (outcome == kUnavailable) return "jwks_unavailable";
  return auth::JwtErrorName(static_cast<auth::JwtError>(outcome - kFirstError));
}

// A claim value may go into a header only without control characters (no header injection).
bool SafeHeaderValue(std::string_view value) {
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && byte != '\t') || byte == 0x7f) return false;
  }
  return true;
}

}  // namespace

JwtFilter::JwtFilter(std::shared_ptr<auth::Provider> provider) : provider_(std::move(provider)) {
  if (auto* family = auth::VerificationCounters()) {
    for (std::size_t i = 0; i < kOutcomes; ++i) {
      counters_[i] = &family->Get(provider_->config().name, OutcomeName(i));
    }
  }
}

void JwtFilter::Count(FilterContext& context, std::size_t outcome) const {
  if (counters_[outcome] != nullptr) counters_[outcome]->Add(context.slot);
}

Verdict JwtFilter::OnRequest(FilterContext& context) const {
  const config::JwtProvider& config = provider_->config();
  const std::string_view token = auth::RequestToken(context.request.headers, config.cookie);
  if (token.empty()) {
    Count(context, kMissing);
    MakeErrorReply(context.reply, 401, "jwt_missing",
                   "this route needs a bearer token (Authorization: Bearer)", context.request_id);
    context.reply.headers.Add("www-authenticate", auth::BearerChallenge(config.name));
    return Verdict::kReply;
  }
  std::shared_ptr<const auth::Jwks> keys = provider_->keys();
  if (provider_->needs_jwks() && keys == nullptr) {
    Count(context, kUnavailable);
    MakeErrorReply(context.reply, 503, "jwks_unavailable",
                   fmt::format("the keys of JWT provider '{}' could not be loaded yet; try again",
                               config.name),
                   context.request_id);
    context.reply.headers.Add("retry-after", "1");
    return Verdict::kReply;
  }
  auto verified = provider_->verifier().Verify(token, keys.get(), context.clock.wall());
  if (!verified) {
    const auth::JwtFailure& failure = verified.error();
    if (failure.error == auth::JwtError::kUnknownKid) provider_->WantRefetch();
    Count(context, kFirstError + static_cast<std::size_t>(failure.error));
    MakeErrorReply(context.reply, 401, "jwt_invalid", "invalid bearer token: " + failure.message,
                   context.request_id);
    context.reply.headers.Add("www-authenticate",
                              auth::BearerChallenge(config.name, failure.message));
    return Verdict::kReply;
  }
  Count(context, kOk);
  http::Headers& headers = context.request.headers;
  std::string joined;
  for (const auto& [claim, header] : config.forward_claims) {
    headers.Remove(header);
    joined.clear();
    for (const auto& [name, value] : verified->claims) {
      if (name != claim || !SafeHeaderValue(value)) continue;
      if (!joined.empty()) joined.push_back(',');
      joined.append(value);
    }
    if (!joined.empty()) headers.Add(header, joined);
  }
  context.caller.jwt = true;
  context.caller.claims = std::move(verified->claims);
  return Verdict::kContinue;
}

std::unique_ptr<const Filter> MakeJwt(const config::Route& route, const config::Config& config) {
  if (!route.auth || route.auth->jwt.empty()) return nullptr;
  // The loader guarantees the provider exists; a route that names none must still not go open.
  auto provider = config.auth.jwt.find(route.auth->jwt);
  config::JwtProvider missing;
  missing.name = route.auth->jwt;
  missing.jwks = "/nonexistent/ferry/no-such-provider";
  return std::make_unique<JwtFilter>(
      auth::ProviderFor(provider != config.auth.jwt.end() ? provider->second : missing));
}

}  // namespace ferry::proxy::filters
