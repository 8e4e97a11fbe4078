#include "resilience/outcome.hpp"

namespace ferry::resilience {

Outcome Classify(const Result<void>& tried, bool try_timed_out) {
  if (tried) return Outcome::kResponse;
  switch (tried.error().code()) {
    case ErrorCode::kConnectFailed:
    case ErrorCode::kTlsFailed:
      return Outcome::kConnectFailure;
    case ErrorCode::kConnectionClosed:
      return Outcome::kReset;
    case ErrorCode::kDeadlineExceeded:
      return try_timed_out ? Outcome::kTryTimeout : Outcome::kDeadline;
    case ErrorCode::kUnavailable:
    case ErrorCode::kResourceExhausted:
      return Outcome::kNoEndpoint;
    case ErrorCode::kCancelled:
      return Outcome::kCancelled;
    default:
      return Outcome::kProtocol;
  }
}

bool IsFailure(Outcome outcome, int status) {
  switch (outcome) {
    case Outcome::kResponse:
      return status >= 500;
    case Outcome::kConnectFailure:
    case Outcome::kReset:
    case Outcome::kTryTimeout:
      return true;
    default:
      return false;
  }
}

std::string_view Name(Outcome outcome) {
  switch (outcome) {
    case Outcome::kResponse:
      return "response";
    case Outcome::kConnectFailure:
      return "connect_failure";
    case Outcome::kReset:
      return "reset";
    case Outcome::kTryTimeout:
      return "try_timeout";
    case Outcome::kDeadline:
      return "deadline";
    case Outcome::kNoEndpoint:
      return "no_endpoint";
    case Outcome::kProtocol:
      return "protocol";
    case Outcome::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

}  // namespace ferry::resilience
