// grpc.health.v1 (the gRPC health checking protocol) for the active health checks of a service
// with `health: {grpc: {service: NAME}}`: the Check request's gRPC message, and the verdict of
// its answer. Only the two fields the protocol has are encoded and read (protobuf by hand: no
// protobuf library for one string and one enum). Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "http/headers.hpp"

namespace ferry::upstream::grpc_health {

inline constexpr std::string_view kCheckPath = "/grpc.health.v1.Health/Check";

// The request body: one length-prefixed HealthCheckRequest{service}.
std::string CheckRequest(std::string_view service);
// True when the call succeeded (grpc-status 0, in the trailers or, Trailers-Only, the head) and
// its one HealthCheckResponse says SERVING (1). `trailers` may be null.
bool Serving(int http_status, const http::Headers& head, const http::Headers* trailers,
             std::string_view body);

}  // namespace ferry::upstream::grpc_health
