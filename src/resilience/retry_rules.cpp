#include "resilience/retry_rules.hpp"

#include <algorithm>

#include "resilience/backoff.hpp"

namespace ferry::resilience {

bool IsIdempotent(std::string_view method, bool has_idempotency_key) {
  if (has_idempotency_key) return false;
  switch (method.size()) {
    case 3:
      return method == "GET" || method == "PUT";
    case 4:
      return method == "HEAD";
    case 5:
      return method == "TRACE";
    case 6:
      return method == "DELETE";
    case 7:
      return method == "OPTIONS";
    default:
      return false;
  }
}

int TrailersOnlyGrpcStatus(int http_status, const http::Headers& head) {
  if (http_status != 200) return -1;
  const auto status = head.Get("grpc-status");
  if (!status || status->empty() || status->size() > 2 || head.Has("x-ferry-breaker")) return -1;
  int value = 0;
  for (const char c : *status) {
    if (c < '0' || c > '9') return -1;
    value = value * 10 + (c - '0');
  }
  return value;
}

bool RetryOn(const config::RetryPolicy& retry, const TryFacts& t) {
  if (t.outcome == Outcome::kResponse && t.grpc_status > 0) {
    return std::find(retry.on_grpc.begin(), retry.on_grpc.end(), t.grpc_status) !=
           retry.on_grpc.end();
  }
  if (t.outcome == Outcome::kResponse) {
    return std::find(retry.on_status.begin(), retry.on_status.end(), t.status) !=
           retry.on_status.end();
  }
  config::RetryCondition condition;
  switch (t.outcome) {
    case Outcome::kConnectFailure:
      condition = config::RetryCondition::kConnectFailure;
      break;
    case Outcome::kReset:
      condition = config::RetryCondition::kReset;
      break;
    case Outcome::kTryTimeout:
      condition = config::RetryCondition::kTryTimeout;
      break;
    default:
      return false;  // the deadline, no endpoint, a protocol error, a cancellation
  }
  return std::find(retry.on.begin(), retry.on.end(), condition) != retry.on.end();
}

RetryDecision DecideRetry(const config::Policy& policy, const RequestFacts& r, const TryFacts& t,
                          std::uint32_t tries, Duration left, double unit) {
  RetryDecision d;
  if (!RetryOn(policy.retry, t)) {
    d.refusal = Refusal::kNotRetryable;
    return d;
  }
  if (tries >= policy.retry.attempts) {
    d.refusal = Refusal::kAttempts;
    return d;
  }
  // A connect failure wrote nothing: any method may go again. Otherwise the request may have
  // reached the application.
  const bool reached = t.outcome != Outcome::kConnectFailure;
  if (reached && !MayResend(r)) {
    d.refusal = Refusal::kUnsafe;
    return d;
  }
  if (!r.replayable) {
    d.refusal = Refusal::kBody;
    return d;
  }
  d.wait = BackoffDelay(policy.retry.backoff, tries, unit);
  if (t.retry_after && (t.status == 429 || t.status == 503)) {
    d.wait = std::max(d.wait, *t.retry_after);
  }
  if (left - d.wait < kMinTryTime) d.refusal = Refusal::kDeadline;
  return d;
}

}  // namespace ferry::resilience
