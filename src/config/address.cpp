#include <fmt/format.h>

#include "config/config.hpp"

namespace ferry::config {

std::string Address::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

}  // namespace ferry::config
