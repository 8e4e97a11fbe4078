// Reading of the JWT keys into config.hpp's shapes, with the loader's strictness: the top-level
// `auth: {jwt: {NAME: {...}}}` providers and a route's `auth: {jwt: NAME}`. Internal to
// src/config: loader.cpp calls these and checks that a route's provider exists.
// Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include <optional>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// The `auth:` block. A provider's checks that need no other part of the file are made here:
// algorithms known (never `none`), HMAC ones only with secret_file (and secret_file only with
// one of them), the secret file private and long enough, a jwks source unless only HMAC is
// accepted, http:// JWKS URLs only to loopback addresses, forward_claims header names.
Auth ReadAuth(const Field& field, Diagnostics& diags);

// A route's `auth:`; the provider's existence is checked by the loader.
std::optional<RouteAuth> ReadRouteAuth(const Field& field, Diagnostics& diags);

}  // namespace ferry::config::internal
