// Ferry's own responses. A filter's reply is sent as it made it; Ferry's errors share one JSON
// shape, with the status of their code in the one error table (core/result.hpp):
//   {"error": {"code": "no_route", "status": 404, "message": "..."}, "request_id": "..."}
#pragma once

#include <string>
#include <string_view>

#include "core/result.hpp"
#include "proxy/filter.hpp"

namespace ferry::server {
struct ResponseHead;
}  // namespace ferry::server

namespace ferry::proxy {

// The stable JSON codes of the proxy path. The table code each goes with (its status):
// no_route: not_found (404); bad_request: invalid_argument (400); headers_too_large (431);
// body_too_large: resource_exhausted (413); request_timeout (408); upstream_connect_failed:
// connect_failed (502); upstream_tls_failed: tls_failed (502); bad_upstream_response:
// upstream_protocol or connection_closed (502); no_healthy_endpoint and upstream_overloaded:
// unavailable (503); circuit_open (503); upstream_timeout: deadline_exceeded (504); internal (500).
namespace reply {
inline constexpr std::string_view kNoRoute = "no_route";
inline constexpr std::string_view kBadRequest = "bad_request";
inline constexpr std::string_view kHeadersTooLarge = "headers_too_large";
inline constexpr std::string_view kBodyTooLarge = "body_too_large";
inline constexpr std::string_view kRequestTimeout = "request_timeout";
inline constexpr std::string_view kUpstreamConnectFailed = "upstream_connect_failed";
inline constexpr std::string_view kUpstreamTlsFailed = "upstream_tls_failed";
inline constexpr std::string_view kBadUpstreamResponse = "bad_upstream_response";
inline constexpr std::string_view kNoHealthyEndpoint = "no_healthy_endpoint";
inline constexpr std::string_view kUpstreamOverloaded = "upstream_overloaded";
inline constexpr std::string_view kCircuitOpen = "circuit_open";
inline constexpr std::string_view kUpstreamTimeout = "upstream_timeout";
inline constexpr std::string_view kInternal = "internal";
}  // namespace reply

// Makes `out` the JSON error reply for `error`: its status is the HTTP status of the error's
// code, `code` the stable JSON code.
void MakeErrorReply(LocalReply& out, const Error& error, std::string_view code,
                    std::string_view request_id);
// The same for a status the server chose (its own answers: a bad head, a limit).
void MakeErrorReply(LocalReply& out, int status, std::string_view code, std::string_view message,
                    std::string_view request_id);

// The head of a local reply as the server sends it: the reply's fields, except framing and
// hop-by-hop ones and x-request-id, then x-request-id. The server adds content-length (none
// with a 1xx, 204 or 304) and connection, and leaves the body out in answer to HEAD.
void MakeReplyHead(const LocalReply& reply, std::string_view request_id,
                   server::ResponseHead& head);

}  // namespace ferry::proxy
