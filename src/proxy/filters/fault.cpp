#include "proxy/filters/fault.hpp"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>

#include "proxy/local_reply.hpp"

namespace ferry::proxy::filters {
namespace {

// True for `percent` of the calls (0-100), drawn on this thread's generator.
bool Draw(double percent) {
  if (percent >= 100) return true;
  if (percent <= 0) return false;
  thread_local std::mt19937_64 generator{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 100)(generator) < percent;
}

}  // namespace

Verdict FaultFilter::OnRequest(FilterContext& context) const {
  if (fault_.delay && Draw(fault_.delay->percent)) return Verdict::kWait;
  return Abort(context);
}

Task<Verdict> FaultFilter::Wait(FilterContext& context) const {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  timer.expires_after(fault_.delay->duration);
  co_await timer.async_wait(kNoThrow);  // bounded by the duration; no error to see
  co_return Abort(context);
}

Verdict FaultFilter::Abort(FilterContext& context) const {
  if (!fault_.abort || !Draw(fault_.abort->percent)) return Verdict::kContinue;
  MakeErrorReply(context.reply, fault_.abort->status, "fault_abort",
                 "aborted by the route's fault injection", context.request_id);
  return Verdict::kReply;
}

std::unique_ptr<const Filter> MakeFault(const config::Route& route, const config::Config&) {
  if (!route.fault) return nullptr;
  return std::make_unique<FaultFilter>(*route.fault);
}

}  // namespace ferry::proxy::filters
