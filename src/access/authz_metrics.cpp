#include "access/authz_metrics.hpp"

#include <atomic>

namespace ferry::access {
namespace {

std::atomic<observability::CounterFamily*> g_family{nullptr};

}  // namespace

observability::CounterFamily* RegisterAuthzDecisions(observability::MetricsRegistry& registry) {
  auto family = registry.AddCounter("ferry_authz_decisions_total",
                                    "Authorization decisions, by route (or bus API operation) and "
                                    "decision (allow, deny).",
                                    {"route", "decision"});
  return family ? *family : nullptr;
}

NodeAuthzDecisions::NodeAuthzDecisions(observability::MetricsRegistry& registry)
    : family_(RegisterAuthzDecisions(registry)) {
  g_family.store(family_);
}

NodeAuthzDecisions::~NodeAuthzDecisions() {
  // Only if it is still ours: its registry (and so the family) goes with whoever held it.
  observability::CounterFamily* expected = family_;
  g_family.compare_exchange_strong(expected, nullptr);
}

observability::CounterFamily* AuthzDecisionsFamily() { return g_family.load(); }

}  // namespace ferry::access
