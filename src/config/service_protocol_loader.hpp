// Reading of a service's HTTP version (issue 14, item 3): `protocol: http1 | http2 | auto` and
// the `http2:` block of `services.<name>`, with the loader's strictness. Internal to
// src/config; loader.cpp calls it for each service after its `tls:` was read, because `auto`
// needs the service's TLS (ALPN) and an `http2:` block needs protocol http2 or auto.
// Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// Takes `protocol` and `http2` from the service's map into `service` (its tls already read).
void ReadServiceProtocol(MapReader& map, Service& service, Diagnostics& diags);

}  // namespace ferry::config::internal
