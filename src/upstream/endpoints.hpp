// A service's endpoints from its configured addresses: each host name resolved to its IPs, and
// how a new resolution round replaces the endpoints (those that stay are kept, with their pools
// and health). Used by Cluster (and, through aliases, by bus push's own tests).
// Blocking: ResolveHosts calls the resolver (getaddrinfo for SystemResolver): run it off the
// event loop. The rest is plain data work. Thread safety: functions of their arguments only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "upstream/resolver.hpp"

namespace ferry::upstream {

// One address to connect to; `id` ("10.0.0.7:8080", "[::1]:8080") names its pool, its health
// and its place on the load balancer's hash ring.
struct ResolvedAddress {
  std::string id;
  std::string ip;
  std::uint16_t port = 0;
  std::string host;  // as configured: the DNS name it came from, or the IP (TLS: SNI and the
                     // name the server's certificate must carry); "" = ip
};

// One round: per configured address (indexed like `addresses`) its IPs, or nullopt when the
// name did not resolve this time (logged). Blocking.
using ResolvedHosts = std::vector<std::optional<std::vector<std::string>>>;
ResolvedHosts ResolveHosts(Resolver& resolver, const std::vector<config::Address>& addresses);

// The addresses a round gives, in config order, each once (two names for one address: one).
// A host that did not resolve gives none.
std::vector<ResolvedAddress> CombineResolved(const std::vector<config::Address>& addresses,
                                             const ResolvedHosts& round);

// True if some address is a host name (not an IP literal): it needs re-resolution.
bool NeedsResolution(const std::vector<config::Address>& addresses);

// The endpoints for `addresses`, in their order: one that stays is kept as it is (its pool of
// connections, its health and its requests in flight with it), a new one comes from
// make(address), and the ones that went away are dropped (a request in flight on one holds it
// until it ends). Endpoint has a string member `id`.
template <typename Endpoint, typename Make>
std::vector<std::shared_ptr<Endpoint>> MergeEndpoints(
    const std::vector<std::shared_ptr<Endpoint>>& current,
    const std::vector<ResolvedAddress>& addresses, Make make) {
  std::vector<std::shared_ptr<Endpoint>> out;
  out.reserve(addresses.size());
  for (const ResolvedAddress& a : addresses) {
    std::shared_ptr<Endpoint> kept;
    for (const auto& e : current) {
      if (e->id == a.id) kept = e;
    }
    out.push_back(kept ? std::move(kept) : make(a));
  }
  return out;
}

}  // namespace ferry::upstream
