// Where filters are built: one factory per filter (each in its own file under filters/), and
// the list of them in the order their filters run on a route. A factory reads the route's
// config (already validated by the loader) and returns the route's instance of its filter, or
// nullptr when the route does not use it. Adding a filter is a file under filters/ and a row in
// BuiltinFilters() (filter_registry.cpp).
// Thread safety: chains are built on the main thread, with the config snapshot.
#pragma once

#include <memory>
#include <span>
#include <string_view>

#include "config/config.hpp"
#include "proxy/filter.hpp"

namespace ferry::proxy {

struct FilterFactory {
  std::string_view name;
  std::unique_ptr<const Filter> (*create)(const config::Route& route, const config::Config& config);
};

// Every filter Ferry has, in the order they run.
std::span<const FilterFactory> BuiltinFilters();

// The chain of one route: each factory's filter, if it gives one, in the factories' order.
FilterChain BuildFilterChain(const config::Route& route, const config::Config& config,
                             std::span<const FilterFactory> factories = BuiltinFilters());

}  // namespace ferry::proxy
