#include "app/jwks_fetch.hpp"

#include <fmt/format.h>

#include <chrono>

#include "app/verified_send.hpp"
#include "tls/client_context.hpp"

namespace ferry::app {

Result<std::string> FetchJwks(const config::JwtProvider& provider) {
  auto url = ParseUrl(provider.jwks);
  if (!url) return tl::unexpected(url.error());
  HttpRequest request;
  request.target = url->path.empty() ? "/" : url->path;
  request.headers.emplace_back("accept", "application/json, application/jwk-set+json");
  url->path.clear();
  auto response = SendVerified(*url, request, std::chrono::seconds(3), provider.jwks_ca);
  if (!response) return tl::unexpected(response.error());
  if (response->status != 200) {
    return Fail(ErrorCode::kUnavailable, fmt::format("HTTP status {}", response->status));
  }
  return std::move(response->body);
}

Result<void> CheckJwksCas(const config::Config& config) {
  for (const auto& [name, provider] : config.auth.jwt) {
    if (provider.jwks_ca.empty()) continue;
    config::ServiceTls settings;
    settings.ca = provider.jwks_ca;
    if (auto made = tls::ClientContext::Create(name, settings, nullptr); !made) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("auth.jwt.{}.jwks_ca: {}", name, made.error().message()));
    }
  }
  return Ok();
}

}  // namespace ferry::app
