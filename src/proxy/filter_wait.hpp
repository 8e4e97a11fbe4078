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

// Follows one exchange to its end for a filter that must see the response whole (the
// idempotency filter stores it). A filter adds one to FilterContext::observers; the exchange
// owns it and calls it on its worker: OnHead and OnBody as the upstream's response goes to the
// client, then either OnComplete or OnLocalReply. Both are awaited before the client can have
// the whole answer (before the last byte of the response, or before the local reply), so a
// client that read a whole response finds what the observer did with it already done. An
// exchange that ends otherwise (the response cut short, the client gone) calls neither.
class ResponseObserver {
 public:
  virtual ~ResponseObserver() = default;
  // The response head as it goes to the client (after every OnResponse; no framing fields).
  virtual void OnHead(int status, const http::Headers& headers) = 0;
  virtual void OnBody(std::string_view piece) = 0;
  // The whole upstream response went through OnHead and OnBody.
  virtual Task<void> OnComplete() = 0;
  // Ferry answers with a local reply instead (an upstream failure or a later filter's reply).
  virtual Task<void> OnLocalReply(int status) = 0;
};

}  // namespace ferry::proxy
