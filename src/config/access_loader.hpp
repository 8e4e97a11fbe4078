// Reading of the access keys into config.hpp's shapes, with the loader's strictness: a route's
// (and the bus API's) `api_keys` and `cors`, and the top-level `authorization` block. Internal to
// src/config: loader.cpp calls these and checks what needs the rest of the file (the routes
// that rules name exist). Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/bus_loader.hpp"
#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// The bus API's operations, which authorization rules name in `routes` beside route names
// (docs/bus.md#authentication-and-authorization). A route may not take one of these names.
inline constexpr std::string_view kBusOperations[] = {"bus.publish", "bus.consume", "bus.replay",
                                                      "bus.manage"};
bool IsBusOperation(std::string_view name);

std::optional<ApiKeys> ReadApiKeys(const Field& field, Diagnostics& diags);
std::optional<Cors> ReadCors(const Field& field, Diagnostics& diags);

struct AuthorizationBlock {
  std::optional<Authorization> authorization;
  std::vector<ServiceReference> routes;  // every route name a rule writes, for the end check
};
AuthorizationBlock ReadAuthorization(const Field& field, Diagnostics& diags);

}  // namespace ferry::config::internal
