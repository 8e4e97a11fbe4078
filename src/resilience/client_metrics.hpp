// The metric series the resilience pipeline writes for one service, resolved ahead of time (the
// proxy's config snapshot), so a try or a retry looks nothing up by name but a retry's reason.
// Thread safety: each worker writes its own slot.
#pragma once

#include <string_view>

#include "observability/metric_family.hpp"
#include "observability/metric_series.hpp"

namespace ferry::resilience {

// A service's series (resolved in the config snapshot), written in the worker's slot.
struct ClientMetrics {
  observability::Counter* tries = nullptr;             // every try sent (first ones too)
  observability::Counter* budget_exhausted = nullptr;  // retries the budget refused
  observability::Counter* hedges = nullptr;            // hedged tries started
  observability::Family<observability::Counter>* retries = nullptr;  // {service, reason}
  std::string_view service;
};

}  // namespace ferry::resilience
