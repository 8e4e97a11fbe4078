// ferry_authz_decisions_total{route,decision}: one count per authorization decision, by route
// (or bus operation) and `allow`/`deny`. The proxy's metrics hold a NodeAuthzDecisions, which
// makes the family the node's for as long as they live; the authorization filters' factories
// find it with AuthzDecisionsFamily(). The bus API registers the same family in the same
// registry (RegisterAuthzDecisions) and keeps its own pointer.
// Thread safety: registration and lookups run on the main thread (start-up, reload) or the
// bus thread at its start; the counters are written by workers in their own slots.
#pragma once

#include "observability/metrics_registry.hpp"

namespace ferry::access {

// Registers the family in `registry`, or finds it there; null only on a registration bug.
observability::CounterFamily* RegisterAuthzDecisions(observability::MetricsRegistry& registry);

// The node's family from construction to destruction (a later one replaces it meanwhile).
class NodeAuthzDecisions {
 public:
  explicit NodeAuthzDecisions(observability::MetricsRegistry& registry);
  ~NodeAuthzDecisions();
  NodeAuthzDecisions(const NodeAuthzDecisions&) = delete;
  NodeAuthzDecisions& operator=(const NodeAuthzDecisions&) = delete;

 private:
  observability::CounterFamily* family_;
};

// The node's family; null when none is held (unit tests that build filters by hand).
observability::CounterFamily* AuthzDecisionsFamily();

}  // namespace ferry::access
