// Result<T> and the canonical error codes Ferry uses on every expected-failure path.
// Thread safety: values only. Errors are returned, never thrown, on the request path.
#pragma once

#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <utility>

namespace ferry {

// The small, closed set of error codes. core/error.cpp maps each to an HTTP status, a gRPC
// status and whether an idempotent request that failed with it may be retried.
enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,     // the caller sent something malformed (bad request, bad config value)
  kNotFound,            // no such route, queue, file
  kAlreadyExists,       // duplicate name
  kFailedPrecondition,  // state forbids it (stale receipt, node draining)
  kResourceExhausted,   // a limit was hit (too large, too many, disk full)
  kUnavailable,         // transient: connect refused, no healthy endpoint; retryable
  kDeadlineExceeded,    // a timeout fired
  kUpstreamProtocol,    // the upstream answered with something that is not valid HTTP
  kConnectionClosed,    // the peer closed the connection
  kCancelled,           // the operation was cancelled (shutdown, client went away)
  kIo,                  // a local I/O error (disk, socket options)
  kInternal,            // a bug: an invariant broke
  // Appended, so the values above keep their numbers:
  kConnectFailed,    // no connection to the peer could be made (refused, unreachable, connect
                     // timeout): nothing was sent, so any request may be tried again
  kRequestTimeout,   // the client did not send its request (head or body) in the time allowed
  kHeadersTooLarge,  // a request head over the size or field-count limit
  kNoSpace,          // the disk is full (ENOSPC): nothing was stored; passes once space is freed
  kFull,             // a queue or topic is at its byte limit: passes once consumers free space
  kCircuitOpen,      // a service's circuit breaker is open: the upstream was not contacted
  kRateLimited,      // a rate limit refused the request; passes after Retry-After
  kUnprocessable,    // well-formed but refused (an idempotency key reused with another body)
  kTlsFailed,        // a TLS handshake failed or the peer is not who it must be (chain, name,
                     // pin, mesh identity): nothing was sent, so another endpoint may be tried
};

struct ErrorInfo {
  int http_status;        // status Ferry answers with when this error ends a request
  int grpc_status;        // the matching grpc-status
  bool retryable;         // may an idempotent request that failed this way be tried again
  std::string_view name;  // stable snake_case name, used in JSON error bodies and metrics
};

const ErrorInfo& Describe(ErrorCode code);

// An error: a code from the table and a human-readable message.
class Error {
 public:
  Error(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  const ErrorInfo& info() const { return Describe(code_); }

 private:
  ErrorCode code_;
  std::string message_;
};

template <typename T>
using Result = tl::expected<T, Error>;

// Ok() for Result<void>, and Fail(code, msg) for any Result<T>.
inline Result<void> Ok() { return {}; }
inline tl::unexpected<Error> Fail(ErrorCode code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}

}  // namespace ferry
