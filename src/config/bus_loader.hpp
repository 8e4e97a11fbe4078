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
};

BusBlock ReadBus(const Field& field, Diagnostics& diags);

}  // namespace ferry::config::internal
