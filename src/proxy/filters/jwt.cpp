#include "proxy/filters/jwt.hpp"

#include <fmt/format.h>

#include <string>

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

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The token of `Authorization: Bearer TOKEN`; "" for another scheme or none.
std::string_view BearerToken(std::string_view value) {
  value = Trim(value);
  const std::size_t space = value.find_first_of(" \t");
  if (space == std::string_view::npos) return {};
  if (!http::EqualsIgnoreCase(value.substr(0, space), "bearer")) return {};
  return Trim(value.substr(space + 1));
}

// The value of cookie `name` in the request's Cookie headers (RFC 6265 section 5.4); "" if none.
std::string_view CookieValue(const http::Headers& headers, std::string_view name) {
  std::string_view found;
  headers.ForEach([&](const http::Headers::Field& field) {
    if (!found.empty() || !http::EqualsIgnoreCase(field.name, "cookie")) return;
    std::string_view rest = field.value;
    while (!rest.empty() && found.empty()) {
      const std::size_t end = rest.find(';');
      std::string_view pair = Trim(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      const std::size_t equals = pair.find('=');
      if (equals == std::string_view::npos || Trim(pair.substr(0, equals)) != name) continue;
      std::string_view value = Trim(pair.substr(equals + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      found = value;
    }
  });
  return found;
}

// A claim value may go into a header only without control characters (no header injection).
bool SafeHeaderValue(std::string_view value) {
  for (const char c : value) {
    const auto byte = static_cast<unsigned char>(c);
    if ((byte < 0x20 && byte != '\t') || byte == 0x7f) return false;
  }
  return true;
}

// error_description is a quoted-string: keep it to printable ASCII without '"' and '\'.
std::string QuotedSafe(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    out.push_back(byte < 0x20 || byte > 0x7e || c == '"' || c == '\\' ? ' ' : c);
  }
  return out;
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
  std::string_view token;
  if (auto authorization = context.request.headers.Get("authorization")) {
    token = BearerToken(*authorization);
  }
  if (token.empty() && !config.cookie.empty()) {
    token = CookieValue(context.request.headers, config.cookie);
  }
  if (token.empty()) {
    Count(context, kMissing);
    MakeErrorReply(context.reply, 401, "jwt_missing",
                   "this route needs a bearer token (Authorization: Bearer)", context.request_id);
    context.reply.headers.Add("www-authenticate", fmt::format(R"(Bearer realm="{}")", config.name));
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
    context.reply.headers.Add(
        "www-authenticate",
        fmt::format(R"(Bearer realm="{}", error="invalid_token", error_description="{}")",
                    config.name, QuotedSafe(failure.message)));
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
