// Reading of the `bus:` block into config.hpp's Bus, with the loader's strictness. Internal to
// src/config: loader.cpp calls it and does the checks that need the rest of the file (push
// services exist, the listen address is not taken). Not thread-safe; never throws: problems go
// to Diagnostics.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// A service name written somewhere in the file, to be checked against `services:` at the end.
struct ServiceReference {
  std::string name;
  YAML::Mark mark;
  std::string path;  // "listeners[0].routes[1].service", "bus.queues.jobs.push.service"
};

struct BusBlock {
  Bus bus;                      // every valid value read, defaults elsewhere
  std::optional<Field> listen;  // where bus.listen is written; none: it takes its default
  bool listen_valid = true;     // false: bus.listen was written but is not an address
  std::vector<ServiceReference> push_services;  // every push.service, in file order
  std::optional<Field> mesh_tls;                // `tls: mesh` of the bus, which needs a mesh: block
  std::optional<ServiceReference> jwt_provider;  // bus.api.auth.jwt, checked against auth.jwt
};

BusBlock ReadBus(const Field& field, Diagnostics& diags);

// A `backoff:` map (initial > 0, max >= initial, multiplier >= 1) read over the values already
// in place (a value not written is called "the default" in messages). The bus's delivery
// backoff and a retry policy's backoff share these keys and rules.
void ReadBackoff(const Field& field, Duration& initial, Duration& max, double& multiplier,
                 Diagnostics& diags);

}  // namespace ferry::config::internal
