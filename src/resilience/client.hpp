// The resilience pipeline around upstream::Cluster::Send, with the same shape of call:
//
//   deadline ► tries (retry rules, budget, backoff) ► [guard: breaker ► bulkhead] ► try timeout
//
// Send makes the first try and, while the retry rules (retry_rules.hpp) and the service's retry
// budget allow it, retries after a backoff, each retry avoiding the endpoint just tried. Every
// try carries the time left of the request's deadline upstream as `x-ferry-deadline-ms`, and
// ends at the policy's `try_timeout` if no response head came by then (its connection closed).
// When no retry is allowed the last try's own result is returned (a 503 response stays a
// response). Hedging (policy.hedge; idempotent requests without a body): when a try has no
// response head after `hedge.after`, an extra try goes to another endpoint (if the budget
// allows), and another after each further `hedge.after`, up to `hedge.max_extra`; the first
// good response wins, the other tries are aborted and their connections closed.
// The hedge is lazy: the first try runs in place, as without hedging, watched by a
// runtime::IoWatch whose notice comes from the worker's NoticeBoard (one timer); only that
// notice spawns an extra try (on a TaskGroup of its own). A try that answers before
// `hedge.after` costs no spawn, no extra timer and no allocation.
// A hedged try and its extras count as one try of `attempts`. A Client is a few references made per
// exchange: nothing is allocated when the first try succeeds. Thread safety: the worker's event
// loop; the ServiceState it reads is node-wide (atomics). Lifetimes: everything passed in must
// outlive Send; `request` and `response` as for Cluster::Send.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "resilience/client_metrics.hpp"
#include "resilience/retry_rules.hpp"
#include "resilience/service_state.hpp"
#include "runtime/asio.hpp"
#include "runtime/notice_board.hpp"
#include "upstream/cluster.hpp"
#include "upstream/load_balancer.hpp"

namespace ferry::resilience {

// The header that carries the time left to the next hop, in relative milliseconds.
inline constexpr std::string_view kDeadlineHeader = "x-ferry-deadline-ms";

// What became of one Send, for the exchange's logs and replies.
struct SendReport {
  std::uint32_t tries = 0;
  bool budget_exhausted = false;
  bool try_timed_out = false;  // the last try ended by try_timeout
  bool overloaded = false;     // the service's concurrency limit refused the request
  Duration retry_after{};      // the breaker refused it: the rest of its open time (0: unknown)
  // The slot of the service's concurrency limit the last try holds: kept until the response
  // is done with (its body streamed), then dropped with the report.
  ConcurrencyLimiter::Permit permit;
};

class Client {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  Client(upstream::Cluster& cluster, ServiceState& state, const config::Policy& policy,
         const Clock& clock, upstream::RandomSource& random, runtime::NoticeBoard& notices,
         const ClientMetrics& metrics, std::size_t slot)
      : cluster_(cluster),
        state_(state),
        policy_(policy),
        clock_(clock),
        random_(random),
        notices_(notices),
        metrics_(metrics),
        slot_(slot) {}

  // `facts` says what the request allows (retry_rules.hpp); `deadline` is the request's total
  // (TimePoint::max(): none). request.may_resend is set from `facts`.
  Task<Result<void>> Send(upstream::Request& request, const RequestFacts& facts, TimePoint deadline,
                          upstream::Response& response, SendReport& report);

 private:
  struct Hedge;     // the watch on a hedged first try, and the hedge once started
  struct HedgeTry;  // an extra try
  // The watch's notice: the first try has no response head after hedge.after.
  void StartHedge(Hedge& hedge);
  Task<void> RunHedge(Hedge& hedge, HedgeTry& extra);
  // After the first try of a started hedge (`first` its result): which answer is the request's
  // (into `request`'s endpoint and `response`); the loser is aborted and its connection closed.
  Task<Result<void>> FinishHedge(Hedge& hedge, const Result<void>& first,
                                 upstream::Request& request, upstream::Response& response);
  // A try's answer that ends the request: a response no retry rule asks to retry.
  bool Good(const Result<void>& got, const upstream::Response& response) const;
  void CountRetry(const TryFacts& t);
  Task<void> Discard(upstream::Response& response, TimePoint deadline);

  upstream::Cluster& cluster_;
  ServiceState& state_;
  const config::Policy& policy_;
  const Clock& clock_;
  upstream::RandomSource& random_;
  runtime::NoticeBoard& notices_;  // the hedges' notices
  const ClientMetrics& metrics_;
  std::size_t slot_;
};

}  // namespace ferry::resilience
