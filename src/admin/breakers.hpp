// The circuit breaker endpoints of the admin API, over the node's breakers (one per service):
//   GET  /breakers            {"<service>": {"state": "closed"|"open"|"half_open",
//                                            "mode": "auto"|"open"|"closed",
//                                            "configured": true|false}, ...}
//   POST /breakers/<service>  body {"mode": "open"|"closed"|"auto"}: force the breaker open, force
//                             it closed, or give it back to automatic; answers the breaker as GET
//                             shows it. 404 not_found for a service not in the config, 400
//                             bad_request for any other body.
// "configured": the service's policy has a circuit_breaker (else it only opens when forced).
// GET /stats carries the same object as "circuit_breakers" (DescribeBreakers).
// Thread safety: plain functions over breakers that are themselves thread-safe.
#pragma once

#include <boost/json/object.hpp>
#include <vector>

#include "admin/admin_server.hpp"
#include "resilience/circuit_breaker.hpp"

namespace ferry::admin {

inline constexpr std::string_view kBreakersPath = "/breakers";
inline constexpr std::string_view kBreakersPrefix = "/breakers/";

// {"<service>": {"state", "mode", "configured"}, ...}: GET /breakers' body, and /stats' part.
boost::json::object DescribeBreakers(const std::vector<resilience::CircuitBreaker*>& breakers);
AdminResponse ListBreakers(const std::vector<resilience::CircuitBreaker*>& breakers);
AdminResponse SetBreakerMode(const AdminRequest& request,
                             const std::vector<resilience::CircuitBreaker*>& breakers);

}  // namespace ferry::admin
