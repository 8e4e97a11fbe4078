// The endpoints of a push's service and how a new DNS answer replaces them (push_delivery.cpp).
// ResolveHosts blocks (the resolver) and runs off the bus thread; the rest is plain data work on
// the bus thread. The bus resolves through an upstream::LastGoodResolver, so a host that does
// not resolve in a round keeps its previous addresses: a DNS hiccup must not take every
// endpoint away (each push would fail and end in the dead letters).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "upstream/resolver.hpp"

namespace ferry::bus {

// One address to push to; `id` ("10.0.0.7:8080", "[::1]:8080") names its pool and its place on
// the load balancer's hash ring.
struct PushAddress {
  std::string id;
  std::string ip;
  std::uint16_t port = 0;
};

// One round: per configured endpoint (indexed like `endpoints`) its IPs, or nullopt when the
// name did not resolve this time. Blocking.
using ResolvedHosts = std::vector<std::optional<std::vector<std::string>>>;
ResolvedHosts ResolveHosts(upstream::Resolver& resolver,
                           const std::vector<config::Address>& endpoints);

// The addresses a round gives, in config order, each once (two names for one address: one).
// A host that did not resolve gives none.
std::vector<PushAddress> CombineResolved(const std::vector<config::Address>& endpoints,
                                         const ResolvedHosts& round);

// The endpoints for `addresses`, in their order: one that stays is kept as it is (its pool of
// connections and its deliveries in flight with it), a new one comes from make(address), and
// the ones that went away are dropped (a delivery in flight on one holds it until it ends).
// Endpoint has a string member `id`.
template <typename Endpoint, typename Make>
std::vector<std::shared_ptr<Endpoint>> MergeEndpoints(
    const std::vector<std::shared_ptr<Endpoint>>& current,
    const std::vector<PushAddress>& addresses, Make make) {
  std::vector<std::shared_ptr<Endpoint>> out;
  out.reserve(addresses.size());
  for (const PushAddress& a : addresses) {
    std::shared_ptr<Endpoint> kept;
    for (const auto& e : current) {
      if (e->id == a.id) kept = e;
    }
    out.push_back(kept ? std::move(kept) : make(a));
  }
  return out;
}

}  // namespace ferry::bus
