// The retry rules, as pure functions (no I/O, no clock of their own), so the pipeline
// (client.hpp) only carries them out:
// - idempotency: GET, HEAD, OPTIONS, PUT, DELETE and TRACE without an Idempotency-Key are
//   idempotent; anything else (POST, PATCH, a request with a key) goes again only when it
//   provably never reached the application (no connection was made), or when its route says
//   the upstream honours Idempotency-Key and it carries one;
// - what is retried: the policy's `retry.on` conditions and statuses, within `attempts`; for a
//   gRPC call of a route's grpc.idempotent method, also its gRPC statuses (a Trailers-Only
//   answer's grpc-status: no response byte has gone to the client yet);
// - the wait: backoff with full jitter, or the upstream's Retry-After (429/503) when longer;
// - time: no retry when less than kMinTryTime would be left after its wait.
// The budget is the caller's last check (RetryBudget::TryWithdraw), so a refusal by the rules
// never spends it.
// Thread safety: plain functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "config/config.hpp"
#include "http/headers.hpp"
#include "resilience/outcome.hpp"

namespace ferry::resilience {

// A try is not started with less than this left of the request's deadline: it could not get
// an answer back in time, and would only load the upstream.
inline constexpr Duration kMinTryTime = std::chrono::milliseconds(5);

// The method is idempotent and no Idempotency-Key came with it.
bool IsIdempotent(std::string_view method, bool has_idempotency_key);

struct RequestFacts {
  bool idempotent = true;  // IsIdempotent
  // The route declares that its upstream honours Idempotency-Key and the request has one.
  bool key_honoured = false;
  bool replayable = true;  // its body (if any) can be sent again
  // A gRPC call of a method the route lists in grpc.idempotent: a Trailers-Only answer's
  // grpc-status is checked against retry.on's gRPC statuses (not one Ferry marked
  // x-ferry-breaker: open).
  bool grpc = false;
};

// May the request be sent again after it reached the upstream? (Idempotent, or a key the
// upstream honours.) Also what the keep-alive race retry inside Send obeys.
inline bool MayResend(const RequestFacts& r) { return r.idempotent || r.key_honoured; }

struct TryFacts {
  Outcome outcome = Outcome::kResponse;
  int status = 0;                       // when outcome is kResponse
  std::optional<Duration> retry_after;  // the response's Retry-After (429, 503)
  int grpc_status = -1;  // a gRPC call's Trailers-Only grpc-status (RequestFacts::grpc); -1: none
};
// The grpc-status of a Trailers-Only response head (status 200, grpc-status in the head), or -1;
// also -1 when the answer is another Ferry's breaker-open UNAVAILABLE (x-ferry-breaker: open),
// which is not to be retried.
int TrailersOnlyGrpcStatus(int http_status, const http::Headers& head);

enum class Refusal {
  kNone,          // retry
  kNotRetryable,  // the outcome or status is not in `retry.on` (a success, a 404, ...)
  kAttempts,      // `attempts` tries were made
  kUnsafe,        // not idempotent, and it may have reached the upstream
  kBody,          // its body streamed and cannot be sent again
  kDeadline,      // too little time left for the wait and another try
};

struct RetryDecision {
  Refusal refusal = Refusal::kNone;
  Duration wait{};  // before the retry
  bool retry() const { return refusal == Refusal::kNone; }
};

// After try number `tries` (1 = the first) came to `t`: retry, and after how long? `left` is
// what remains of the request's deadline now; `unit` a uniform random number in [0, 1).
RetryDecision DecideRetry(const config::Policy& policy, const RequestFacts& r, const TryFacts& t,
                          std::uint32_t tries, Duration left, double unit);

// True if `retry.on` covers the try's outcome (a condition, or the response's status).
bool RetryOn(const config::RetryPolicy& retry, const TryFacts& t);

}  // namespace ferry::resilience
