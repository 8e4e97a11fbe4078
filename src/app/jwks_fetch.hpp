// The JWKS updater's fetch (auth/jwks_updater.hpp) for a provider whose `jwks` is a URL: a GET
// over http:// (loopback only, the loader checks) or https:// verified with the provider's
// `jwks_ca` (else the system's roots). A 200 is the JWKS; any other answer is an error.
// Blocking, within its own timeout (3 s); runs on the updater's thread.
#pragma once

#include <string>

#include "config/config.hpp"
#include "core/result.hpp"

namespace ferry::app {

Result<std::string> FetchJwks(const config::JwtProvider& provider);

// Reads every provider's jwks_ca as a fetch would, so that a missing or unreadable bundle stops
// the start (and fails ferry validate) instead of leaving the provider's routes at 503. The
// error (kInvalidArgument) names the provider and the file.
Result<void> CheckJwksCas(const config::Config& config);

}  // namespace ferry::app
