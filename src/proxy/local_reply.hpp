// Ferry's own responses. A filter's reply is sent as it made it; Ferry's errors share one JSON
// shape, with the status of their code in the one error table (core/result.hpp):
//   {"error": {"code": "no_route", "status": 404, "message": "..."}, "request_id": "..."}
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"
#include "proxy/filter.hpp"

namespace ferry::proxy {

// The stable JSON codes of the proxy path. The table code each goes with (its status):
// no_route: not_found (404); bad_request: invalid_argument (400); headers_too_large (431);
// body_too_large: resource_exhausted (413); request_timeout (408); upstream_connect_failed:
// connect_failed (502); bad_upstream_response: upstream_protocol or connection_closed (502);
// no_healthy_endpoint and upstream_overloaded: unavailable (503); upstream_timeout:
// deadline_exceeded (504); internal (500).
namespace reply {
inline constexpr std::string_view kNoRoute = "no_route";
inline constexpr std::string_view kBadRequest = "bad_request";
inline constexpr std::string_view kHeadersTooLarge = "headers_too_large";
inline constexpr std::string_view kBodyTooLarge = "body_too_large";
inline constexpr std::string_view kRequestTimeout = "request_timeout";
inline constexpr std::string_view kUpstreamConnectFailed = "upstream_connect_failed";
inline constexpr std::string_view kBadUpstreamResponse = "bad_upstream_response";
inline constexpr std::string_view kNoHealthyEndpoint = "no_healthy_endpoint";
inline constexpr std::string_view kUpstreamOverloaded = "upstream_overloaded";
inline constexpr std::string_view kUpstreamTimeout = "upstream_timeout";
inline constexpr std::string_view kInternal = "internal";
}  // namespace reply

// Makes `out` the JSON error reply for `error`: its status is the HTTP status of the error's
// code, `code` the stable JSON code.
void MakeErrorReply(LocalReply& out, const Error& error, std::string_view code,
                    std::string_view request_id);

// The whole HTTP/1.1 response (head and body) for a local reply; `head_request`: the request
// was HEAD, so the body is left out (its content-length stays).
std::string RenderLocalReply(const LocalReply& reply, std::string_view request_id, bool close,
                             bool head_request = false);

}  // namespace ferry::proxy
