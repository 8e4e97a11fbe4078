// A filter that may wait before it decides (a store lookup, a delay, a token check). Its
// OnRequest may still decide at once (a cache hit, a missing header) and return kWait only
// when it has to; the exchange then co_awaits Wait() on its worker, so nothing else on that
// connection runs meanwhile.
// Thread safety: Wait runs on the exchange's worker; the context and all it refers to live
// until it returns. It is not cancelled when the client goes away: bound every wait.
#pragma once

#include "proxy/filter.hpp"
#include "runtime/asio.hpp"

namespace ferry::proxy {

class WaitingFilter : public Filter {
 public:
  Verdict OnRequest(FilterContext&) const override { return Verdict::kWait; }
  const WaitingFilter* waiting() const final { return this; }
  // kContinue or kReply (kWait again is taken as an internal error).
  virtual Task<Verdict> Wait(FilterContext& context) const = 0;
};

}  // namespace ferry::proxy
