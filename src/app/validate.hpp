// `ferry validate -c FILE`: the config loads, and every file it names loads as a start would
// load it (certificates and keys of listeners, admin, bus and services, JWKS CA bundles).
#pragma once

#include <string>

namespace ferry::app {

// Prints "FILE: ok (...)" or the errors (file:line:col: message) to stderr; an exit code.
int Validate(const std::string& path);

}  // namespace ferry::app
