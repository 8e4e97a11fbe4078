#include "access/cors_policy.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace ferry::access {
namespace {

using http::EqualsIgnoreCase;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

CorsPolicy::CorsPolicy(const config::Cors& cors, const std::vector<std::string>& route_methods)
    : headers_(cors.allow_headers), credentials_(cors.allow_credentials) {
  for (const std::string& origin : cors.allow_origins) {
    if (origin == "*") {
      any_origin_ = true;
    } else {
      origins_.push_back(origin);
    }
  }
  methods_ = !cors.allow_methods.empty() ? cors.allow_methods
             : !route_methods.empty()    ? route_methods
                                         : std::vector<std::string>{"GET", "HEAD", "POST"};
  methods_value_ = fmt::format("{}", fmt::join(methods_, ", "));
  headers_value_ = fmt::format("{}", fmt::join(headers_, ", "));
  expose_value_ = fmt::format("{}", fmt::join(cors.expose_headers, ", "));
  max_age_value_ =
      fmt::format("{}", std::chrono::duration_cast<std::chrono::seconds>(cors.max_age).count());
}

bool CorsPolicy::IsPreflight(const http::RequestHead& request) {
  return request.method == "OPTIONS" && request.headers.Has("origin") &&
         request.headers.Has("access-control-request-method");
}

bool CorsPolicy::OriginAllowed(std::string_view origin) const {
  if (any_origin_) return true;
  return std::any_of(origins_.begin(), origins_.end(),
                     [origin](const std::string& o) { return EqualsIgnoreCase(o, origin); });
}

std::string_view CorsPolicy::AllowOriginValue(std::string_view origin) const {
  // "*" lets any page read it; with credentials browsers demand the origin itself (and "*"
  // with credentials is refused by the loader).
  return any_origin_ ? std::string_view("*") : origin;
}

CorsPolicy::Preflight CorsPolicy::AnswerPreflight(const http::Headers& request,
                                                  http::Headers& out) const {
  const std::string_view origin = request.Get("origin").value_or("");
  if (!OriginAllowed(origin)) return Preflight::kOriginRejected;
  // Methods are case-sensitive (RFC 9110 9.1).
  const std::string_view method = Trim(request.Get("access-control-request-method").value_or(""));
  if (std::find(methods_.begin(), methods_.end(), method) == methods_.end()) {
    return Preflight::kMethodRejected;
  }
  std::string_view asked = request.Get("access-control-request-headers").value_or("");
  while (!asked.empty()) {
    const std::size_t comma = asked.find(',');
    const std::string_view name = Trim(asked.substr(0, comma));
    asked = comma == std::string_view::npos ? std::string_view() : asked.substr(comma + 1);
    if (name.empty()) continue;
    const bool allowed =
        std::any_of(headers_.begin(), headers_.end(),
                    [name](const std::string& h) { return EqualsIgnoreCase(h, name); });
    if (!allowed) return Preflight::kHeadersRejected;
  }
  out.Set("access-control-allow-origin", AllowOriginValue(origin));
  out.Set("access-control-allow-methods", methods_value_);
  if (!headers_value_.empty()) out.Set("access-control-allow-headers", headers_value_);
  out.Set("access-control-max-age", max_age_value_);
  if (credentials_) out.Set("access-control-allow-credentials", "true");
  out.Add("vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
  return Preflight::kAllowed;
}

bool CorsPolicy::AddResponseHeaders(std::optional<std::string_view> origin,
                                    http::Headers& out) const {
  if (!origin || !OriginAllowed(*origin)) return false;
  out.Set("access-control-allow-origin", AllowOriginValue(*origin));
  if (credentials_) {
    out.Set("access-control-allow-credentials", "true");
  } else {
    out.Remove("access-control-allow-credentials");
  }
  if (!expose_value_.empty()) out.Set("access-control-expose-headers", expose_value_);
  // Caches must keep one answer per origin when the answer names the origin.
  if (!any_origin_) out.Add("vary", "Origin");
  return true;
}

}  // namespace ferry::access
