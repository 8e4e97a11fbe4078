// Reading of the resilience keys into config.hpp's shapes, with the loader's strictness: the
// `policies:` block, a service's `health`, a route's `rate_limit`, `fault` and `idempotency`, a
// listener's `trust_deadline_from` and the top-level `idempotency_store`. Internal to
// src/config: loader.cpp calls these and makes the checks that need the rest of the file
// (policy names exist, idempotency has a store, a route's effective policy and timeout).
// Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// Every policy of the file, whole: "default" first (the Policy struct's defaults, with the
// fields of a written `default` replaced), then each other written policy as the effective
// default with the fields it writes replaced (blocks key by key). written: the entries of
// `policies:` with valid names, in file order.
std::map<std::string, Policy> ReadPolicies(
    const std::vector<std::pair<std::string, Field>>& written, Diagnostics& diags);

std::optional<HealthCheck> ReadHealthCheck(const Field& field, Diagnostics& diags);
std::optional<RateLimit> ReadRateLimit(const Field& field, Diagnostics& diags);
std::optional<Fault> ReadFault(const Field& field, Diagnostics& diags);
std::optional<Idempotency> ReadIdempotency(const Field& field, Diagnostics& diags);
std::optional<IdempotencyStore> ReadIdempotencyStore(const Field& field, Diagnostics& diags);
// A list of CIDR networks ("10.0.0.0/8", "::1"); invalid and repeated ones are reported.
std::vector<IpNetwork> ReadNetworks(const Field& field, Diagnostics& diags);

// What a request is keyed by: `client_address` or `{header: NAME}` (a service's `hash_on`, a
// rate limit's `by`); key is the key's name, for messages.
std::optional<HashOn> ReadRequestKey(const Field& field, std::string_view key, Diagnostics& diags);

}  // namespace ferry::config::internal
