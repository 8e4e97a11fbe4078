// What one upstream try came to, in the words the retry rules (`retry.on`), the circuit breaker
// and outlier detection share: a response (and its status), or why there was none. One
// classifier, so every piece calls the same thing a failure.
// Thread safety: plain functions.
#pragma once

#include <string_view>

#include "core/result.hpp"

namespace ferry::resilience {

enum class Outcome {
  kResponse,        // a response head came (its status says more; 5xx is a failure too)
  kConnectFailure,  // no connection: nothing of the request was written
  kReset,           // the connection closed or reset before a whole response head
  kTryTimeout,      // the try timeout ended it before the response head (connection closed)
  kDeadline,        // the request's total deadline ended it
  kNoEndpoint,      // no healthy endpoint, or the pool's connection limit: nothing was sent
  kProtocol,        // the upstream's answer was not valid HTTP
  kCancelled,       // the client went away, or a hedge's other try won
};

// `tried` is Send's result; `try_timed_out`: the try's own timeout (earlier than the total
// deadline) had passed when it failed with kDeadlineExceeded.
Outcome Classify(const Result<void>& tried, bool try_timed_out);

// A failure for the breaker and outlier detection: connect failure, reset, try timeout, or a
// response with a 5xx status.
bool IsFailure(Outcome outcome, int status);

// The name `retry.on` and the metrics use ("connect_failure", "reset", "try_timeout").
std::string_view Name(Outcome outcome);

}  // namespace ferry::resilience
