// The endpoints of a push's service, as the bus names them: since push delivery moved onto the
// upstream client (upstream::Cluster), resolution rounds and how they replace endpoints live in
// upstream/endpoints.hpp; these are its names under the bus's. The bus resolves through an
// upstream::LastGoodResolver, so a host that does not resolve in a round keeps its previous
// addresses: a DNS hiccup must not take every endpoint away (each push would fail and end in the
// dead letters).
#pragma once

#include "upstream/endpoints.hpp"

namespace ferry::bus {

using PushAddress = upstream::ResolvedAddress;
using ResolvedHosts = upstream::ResolvedHosts;
using upstream::CombineResolved;
using upstream::MergeEndpoints;
using upstream::ResolveHosts;

}  // namespace ferry::bus
