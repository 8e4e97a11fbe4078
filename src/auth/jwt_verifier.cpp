#include "auth/jwt_verifier.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json/value.hpp>

#include "auth/json_limits.hpp"
#include "auth/jws.hpp"

namespace ferry::auth {
namespace {

namespace json = boost::json;

tl::unexpected<JwtFailure> Refuse(JwtError error, std::string message) {
  return tl::unexpected(JwtFailure{error, std::move(message)});
}

// A claim's scalar value as text; false for objects, arrays and null.
bool ScalarText(const json::value& value, std::string& out) {
  switch (value.kind()) {
    case json::kind::string:
      out.assign(value.get_string().data(), value.get_string().size());
      return true;
    case json::kind::int64:
      out = fmt::format("{}", value.get_int64());
      return true;
    case json::kind::uint64:
      out = fmt::format("{}", value.get_uint64());
      return true;
    case json::kind::double_:
      out = fmt::format("{}", value.get_double());
      return true;
    case json::kind::bool_:
      out = value.get_bool() ? "true" : "false";
      return true;
    default:
      return false;
  }
}

bool NumberOf(const json::value& value, double& out) {
  if (!value.is_number()) return false;
  out = value.to_number<double>();
  return true;
}

}  // namespace

static_assert(static_cast<std::size_t>(JwtError::kAudience) + 1 == kJwtErrorCount);

std::string_view JwtErrorName(JwtError error) {
  switch (error) {
    case JwtError::kMalformed:
      return "malformed";
    case JwtError::kAlgorithm:
      return "bad_algorithm";
    case JwtError::kCrit:
      return "unknown_crit";
    case JwtError::kUnknownKid:
      return "unknown_kid";
    case JwtError::kNoFittingKey:
      return "no_fitting_key";
    case JwtError::kSignature:
      return "bad_signature";
    case JwtError::kExpired:
      return "expired";
    case JwtError::kNotYetValid:
      return "not_yet_valid";
    case JwtError::kIssuer:
      return "wrong_issuer";
    case JwtError::kAudience:
      return "wrong_audience";
  }
  return "unknown";
}

JwtVerifier::JwtVerifier(JwtOptions options) : options_(std::move(options)) {}

bool JwtVerifier::Accepts(Algorithm algorithm) const {
  if (IsHmac(algorithm) && options_.hmac_secret.empty()) return false;
  return std::find(options_.algorithms.begin(), options_.algorithms.end(), algorithm) !=
         options_.algorithms.end();
}

tl::expected<VerifiedJwt, JwtFailure> JwtVerifier::Verify(
    std::string_view token, const Jwks* jwks, std::chrono::system_clock::time_point now) const {
  auto jws = ParseJws(token);
  if (!jws) return Refuse(JwtError::kMalformed, jws.error().message());
  const auto algorithm = AlgorithmFromName(jws->header.alg);
  if (!algorithm || !Accepts(*algorithm)) {
    return Refuse(JwtError::kAlgorithm,
                  fmt::format("alg {} is not accepted", jws->header.alg.substr(0, 16)));
  }
  if (jws->header.has_crit) return Refuse(JwtError::kCrit, "crit extensions are not supported");

  // The signature first: nothing of an unsigned payload is believed, not even its errors.
  if (IsHmac(*algorithm)) {
    if (!VerifyHmac(*algorithm, options_.hmac_secret, jws->signing_input, jws->signature)) {
      return Refuse(JwtError::kSignature, "signature does not verify");
    }
  } else {
    bool kid_found = false;
    bool fitted = false;
    bool verified = false;
    if (jwks != nullptr) {
      for (const Jwk& key : jwks->keys) {
        if (!jws->header.kid.empty() && key.kid != jws->header.kid) continue;
        kid_found = true;
        if (key.type == KeyType::kOct || !KeyFits(*algorithm, key)) continue;
        fitted = true;
        if (VerifySignature(*algorithm, key, jws->signing_input, jws->signature)) {
          verified = true;
          break;
        }
      }
    }
    if (!kid_found) return Refuse(JwtError::kUnknownKid, "no key has the token's kid");
    if (!fitted) {
      return Refuse(JwtError::kNoFittingKey,
                    fmt::format("no key fits alg {}", AlgorithmName(*algorithm)));
    }
    if (!verified) return Refuse(JwtError::kSignature, "signature does not verify");
  }

  auto payload = ParseJsonObject(jws->payload, kMaxTokenBytes);
  if (!payload) return Refuse(JwtError::kMalformed, "payload: " + payload.error().message());
  const json::object& claims = payload->get_object();

  const double now_seconds = std::chrono::duration<double>(now.time_since_epoch()).count();
  const double skew = static_cast<double>(options_.clock_skew.count());
  double exp = 0;
  const json::value* exp_value = claims.if_contains("exp");
  if (exp_value == nullptr || !NumberOf(*exp_value, exp)) {
    return Refuse(JwtError::kExpired, "exp is missing or not a number");
  }
  if (now_seconds >= exp + skew) return Refuse(JwtError::kExpired, "token has expired");
  if (const json::value* nbf_value = claims.if_contains("nbf")) {
    double nbf = 0;
    if (!NumberOf(*nbf_value, nbf)) return Refuse(JwtError::kNotYetValid, "nbf is not a number");
    if (now_seconds + skew < nbf) return Refuse(JwtError::kNotYetValid, "token is not valid yet");
  }
  if (!options_.issuer.empty()) {
    const json::value* iss = claims.if_contains("iss");
    if (iss == nullptr || !iss->is_string() || iss->get_string() != options_.issuer) {
      return Refuse(JwtError::kIssuer, "iss is not the expected issuer");
    }
  }
  if (!options_.audiences.empty()) {
    const json::value* aud = claims.if_contains("aud");
    bool matched = false;
    auto check = [&](const json::value& one) {
      if (!one.is_string()) return;
      for (const std::string& audience : options_.audiences) {
        if (one.get_string() == audience) matched = true;
      }
    };
    if (aud != nullptr && aud->is_array()) {
      for (const json::value& one : aud->get_array()) check(one);
    } else if (aud != nullptr) {
      check(*aud);
    }
    if (!matched) return Refuse(JwtError::kAudience, "aud holds no expected audience");
  }

  VerifiedJwt out;
  std::string text;
  for (const auto& member : claims) {
    const std::string name(member.key());
    if (member.value().is_array()) {
      for (const json::value& element : member.value().get_array()) {
        if (ScalarText(element, text)) out.claims.emplace_back(name, text);
      }
    } else if (ScalarText(member.value(), text)) {
      out.claims.emplace_back(name, text);
    }
  }
  return out;
}

}  // namespace ferry::auth
