// Ferry's own responses: a JSON body with a stable error code, the same shape everywhere:
//   {"error": {"code": "no_route", "status": 404, "message": "..."}, "request_id": "..."}
#pragma once

#include <string>
#include <string_view>

#include "proxy/filter.hpp"

namespace ferry::proxy {

// The stable codes of the proxy path.
namespace reply {
inline constexpr std::string_view kNoRoute = "no_route";                               // 404
inline constexpr std::string_view kBadRequest = "bad_request";                         // 400
inline constexpr std::string_view kHeadersTooLarge = "headers_too_large";              // 431
inline constexpr std::string_view kBodyTooLarge = "body_too_large";                    // 413
inline constexpr std::string_view kRequestTimeout = "request_timeout";                 // 408
inline constexpr std::string_view kUpstreamConnectFailed = "upstream_connect_failed";  // 502
inline constexpr std::string_view kBadUpstreamResponse = "bad_upstream_response";      // 502
inline constexpr std::string_view kNoHealthyEndpoint = "no_healthy_endpoint";          // 503
inline constexpr std::string_view kUpstreamOverloaded = "upstream_overloaded";         // 503
inline constexpr std::string_view kUpstreamTimeout = "upstream_timeout";               // 504
}  // namespace reply

// The whole HTTP/1.1 response (head and body) for a local reply.
std::string RenderLocalReply(const LocalReply& reply, std::string_view request_id, bool close);

}  // namespace ferry::proxy
