#include "bus/api/bus_access.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "auth/bearer.hpp"
#include "auth/jwt_verifier.hpp"
#include "auth/provider.hpp"
#include "bus/api/bus_service_impl.hpp"
#include "config/access_loader.hpp"

namespace ferry::bus {

namespace {

void CountJwt(const auth::Provider& provider, std::string_view result, std::size_t slot) {
  if (auto* family = auth::VerificationCounters()) {
    family->Get(provider.config().name, result).Add(slot);
  }
}

}  // namespace

std::string_view BusOperation(const http::RequestHead& request) {
  // /v1/queues/Q/..., /v1/topics/T/..., /v1/topics/T/subscriptions/S/...
  std::vector<std::string_view> parts;
  std::string_view path = request.path();
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const std::size_t slash = path.find('/');
    parts.push_back(path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
  }
  const std::string_view method = request.method;
  const std::size_t n = parts.size();
  if (n < 4 || parts[0] != "v1") return "bus.manage";
  const bool queue = parts[1] == "queues";
  if (n == 4 && method == "POST" &&
      ((queue && parts[3] == "messages") || (parts[1] == "topics" && parts[3] == "events"))) {
    return "bus.publish";
  }
  // The inbox's verbs start after the queue's name, or after a subscription's.
  std::size_t at = 3;
  if (!queue) {
    if (n < 6 || parts[3] != "subscriptions") return "bus.manage";
    at = 5;
  }
  const std::string_view verb = parts[at];
  const std::size_t tail = n - at;
  if (tail == 2 && verb == "dead-letters" && parts[at + 1] == "replay") return "bus.replay";
  if (tail == 1 && verb == "replay" && !queue) return "bus.replay";
  if (tail == 1 && (verb == "messages" || verb == "dead-letters") && method == "GET") {
    return "bus.consume";
  }
  if (tail == 1 && (verb == "ack" || verb == "nack" || verb == "extend")) return "bus.consume";
  return "bus.manage";
}

BusAccess::BusAccess(const config::Config& config, observability::CounterFamily* decisions) {
  if (config.bus && config.bus->api.api_keys) {
    keys_.emplace(*config.bus->api.api_keys);
    challenge_ = fmt::format("ApiKey header=\"{}\"", config.bus->api.api_keys->header);
  }
  if (config.bus && config.bus->api.auth) {
    // The loader guarantees the provider exists; one that does not must still not go open.
    auto provider = config.auth.jwt.find(config.bus->api.auth->jwt);
    config::JwtProvider missing;
    missing.name = config.bus->api.auth->jwt;
    missing.jwks = "/nonexistent/ferry/no-such-provider";
    jwt_ = auth::ProviderFor(provider != config.auth.jwt.end() ? provider->second : missing);
  }
  if (!config.authorization) return;
  for (std::string_view name : config::internal::kBusOperations) {
    access::AuthzPolicy policy(*config.authorization, name);
    if (!policy.applies()) continue;
    Operation op{std::string(name), std::move(policy)};
    if (decisions != nullptr) {
      op.allowed = &decisions->Get(name, "allow");
      op.denied = &decisions->Get(name, "deny");
    }
    operations_.push_back(std::move(op));
  }
}

bool BusAccess::open() const { return !keys_ && !jwt_ && operations_.empty(); }

std::optional<ApiResponse> BusAccess::Admit(const http::RequestHead& request, std::string_view peer,
                                            std::size_t slot) const {
  std::string_view key_name;
  if (keys_) {
    const auto answer = keys_->Check(request.headers.Get(keys_->header()));
    using Outcome = access::ApiKeyCheck::Outcome;
    if (answer.outcome != Outcome::kAccepted) {
      const bool missing = answer.outcome == Outcome::kMissing;
      ApiResponse r = ErrorReply(
          401, missing ? "api_key_missing" : "api_key_invalid",
          missing ? fmt::format("the bus API needs an API key in the {} header", keys_->header())
                  : std::string("the API key is not valid"));
      r.www_authenticate = challenge_;
      return r;
    }
    key_name = answer.name;
  }
  std::vector<std::pair<std::string, std::string>> claims;
  bool has_jwt = false;
  if (jwt_) {
    const std::string& realm = jwt_->config().name;
    const std::string_view token = auth::RequestToken(request.headers, jwt_->config().cookie);
    if (token.empty()) {
      CountJwt(*jwt_, "missing", slot);
      ApiResponse r = ErrorReply(401, "jwt_missing",
                                 "the bus API needs a bearer token (Authorization: Bearer)");
      r.www_authenticate = auth::BearerChallenge(realm);
      return r;
    }
    std::shared_ptr<const auth::Jwks> keys = jwt_->keys();
    if (jwt_->needs_jwks() && keys == nullptr) {
      CountJwt(*jwt_, "jwks_unavailable", slot);
      ApiResponse r = ErrorReply(
          503, "jwks_unavailable",
          fmt::format("the keys of JWT provider '{}' could not be loaded yet; try again", realm));
      r.retry_after = "1";
      return r;
    }
    auto verified = jwt_->verifier().Verify(token, keys.get(), std::chrono::system_clock::now());
    if (!verified) {
      const auth::JwtFailure& failure = verified.error();
      if (failure.error == auth::JwtError::kUnknownKid) jwt_->WantRefetch();
      CountJwt(*jwt_, auth::JwtErrorName(failure.error), slot);
      ApiResponse r = ErrorReply(401, "jwt_invalid", "invalid bearer token: " + failure.message);
      r.www_authenticate = auth::BearerChallenge(realm, failure.message);
      return r;
    }
    CountJwt(*jwt_, "ok", slot);
    claims = std::move(verified->claims);
    has_jwt = true;
  }
  const std::string_view operation = BusOperation(request);
  for (const Operation& op : operations_) {
    if (op.name != operation) continue;
    access::AuthzRequest asked;
    asked.path = request.path();
    asked.method = request.method;
    asked.peer = peer;
    asked.api_key = key_name;
    if (has_jwt) asked.claims = &claims;
    const access::AuthzDecision decision = op.policy.Decide(asked);
    observability::Counter* counter = decision.allow ? op.allowed : op.denied;
    if (counter != nullptr) counter->Add(slot);
    if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("authorization: {} {} {} on {} by caller peer='{}' api_key='{}' jwt={}: {}",
                    decision.allow ? "allowed" : "denied", asked.method, asked.path, operation,
                    peer, key_name, has_jwt, access::AuthzPolicy::Describe(decision));
    }
    if (decision.allow) return std::nullopt;
    return ErrorReply(403, "forbidden", "the authorization policy does not allow this request");
  }
  return std::nullopt;
}

}  // namespace ferry::bus
