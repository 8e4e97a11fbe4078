// The settings of a pool of connections to one upstream endpoint (StreamPool),
// taken from a service's config. A value type.
#pragma once

#include <chrono>
#include <cstdint>

#include "core/units.hpp"

namespace ferry::upstream {

struct PoolSettings {
  std::uint32_t max_connections = 1024;  // open (idle + in use) per endpoint on this event loop
  Duration connect_timeout = std::chrono::seconds(2);
  Duration idle_timeout = std::chrono::seconds(60);
};

}  // namespace ferry::upstream
