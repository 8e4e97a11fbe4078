// Fault injection on a route (`fault: {abort: {status, percent}, delay: {duration, percent}}`),
// for tests, demos and chaos drills (this kernel has no netem): a share of requests waits
// `duration` before going on, and a share is answered with `status` (JSON code
// `fault_abort`) without reaching the upstream. The delay comes first, so a request can be
// both delayed and aborted. Each decision is an independent draw per request.
#pragma once

#include <memory>

#include "config/config.hpp"
#include "proxy/filter_wait.hpp"

namespace ferry::proxy::filters {

class FaultFilter final : public WaitingFilter {
 public:
  explicit FaultFilter(config::Fault fault) : fault_(std::move(fault)) {}
  std::string_view name() const override { return "fault"; }
  Verdict OnRequest(FilterContext& context) const override;
  Task<Verdict> Wait(FilterContext& context) const override;

 private:
  Verdict Abort(FilterContext& context) const;
  config::Fault fault_;
};

// The factory (filter_registry.cpp): a filter for routes with `fault`, else none.
std::unique_ptr<const Filter> MakeFault(const config::Route& route, const config::Config& config);

}  // namespace ferry::proxy::filters
