// A route's CORS policy (`cors:`), as plain decisions on header values: what a preflight is
// answered with and which headers a response to a cross-origin request gets. The proxy's cors
// filter applies it (src/proxy/filters/cors.hpp).
// Thread safety: immutable once built; the methods are const.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "http/headers.hpp"
#include "http/message.hpp"

namespace ferry::access {

class CorsPolicy {
 public:
  // route_methods: the route's match.methods, the default of an empty allow_methods.
  CorsPolicy(const config::Cors& cors, const std::vector<std::string>& route_methods);

  // A CORS preflight: OPTIONS with Origin and Access-Control-Request-Method.
  static bool IsPreflight(const http::RequestHead& request);

  enum class Preflight {
    kAllowed,          // `out` holds the 204's CORS headers
    kOriginRejected,   // the origin is not allowed
    kMethodRejected,   // the method asked for is not allowed
    kHeadersRejected,  // a header asked for is not allowed
  };
  // Decides a preflight and, when it is allowed, adds the answer's headers to `out`.
  Preflight AnswerPreflight(const http::Headers& request, http::Headers& out) const;

  // For a response to a request with an Origin header that is allowed: sets
  // Access-Control-Allow-Origin, -Credentials and -Expose-Headers (replacing any the upstream
  // sent) and adds Vary: Origin. Leaves `out` as it is for any other origin. True if it added.
  bool AddResponseHeaders(std::optional<std::string_view> origin, http::Headers& out) const;

  bool OriginAllowed(std::string_view origin) const;
  const std::vector<std::string>& methods() const { return methods_; }

 private:
  // The Access-Control-Allow-Origin value for an allowed origin.
  std::string_view AllowOriginValue(std::string_view origin) const;

  std::vector<std::string> origins_;
  bool any_origin_ = false;
  std::vector<std::string> methods_;
  std::vector<std::string> headers_;  // lowercase
  std::string methods_value_;         // "GET, POST"
  std::string headers_value_;
  std::string expose_value_;
  std::string max_age_value_;  // whole seconds
  bool credentials_ = false;
};

}  // namespace ferry::access
