// Reading of a route's `grpc:` block (issue 14, item 4; docs/grpc.md): the methods that may be
// retried and the largest message. Internal to src/config; loader.cpp calls it for each route
// and checks, once services are read, that the route's service speaks HTTP/2 (gRPC does not run
// over HTTP/1.1). Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

std::optional<GrpcRoute> ReadGrpcRoute(const Field& field, Diagnostics& diags);

// gRPC status names as a policy's retry.on writes them: the codes of grpc/status.h in
// lowercase ("unavailable", "deadline_exceeded", "resource_exhausted", ...).
std::optional<int> GrpcStatusByName(std::string_view name);
std::string_view GrpcStatusName(int code);  // "" for a code without a name
inline constexpr std::string_view kGrpcStatusNames =
    "cancelled, unknown, invalid_argument, deadline_exceeded, not_found, already_exists, "
    "permission_denied, resource_exhausted, failed_precondition, aborted, out_of_range, "
    "unimplemented, internal, unavailable, data_loss, unauthenticated";

}  // namespace ferry::config::internal
