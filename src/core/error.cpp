#include <iterator>

#include "core/result.hpp"

namespace ferry {

const ErrorInfo& Describe(ErrorCode code) {
  // One row per code: http status, grpc status, retryable, name.
  static const ErrorInfo kTable[] = {
      {200, 0, false, "ok"},
      {400, 3, false, "invalid_argument"},
      {404, 5, false, "not_found"},
      {409, 6, false, "already_exists"},
      {409, 9, false, "failed_precondition"},
      {413, 8, false, "resource_exhausted"},
      {503, 14, true, "unavailable"},
      {504, 4, true, "deadline_exceeded"},
      {502, 13, false, "upstream_protocol"},
      {502, 14, true, "connection_closed"},
      {499, 1, false, "cancelled"},
      {500, 13, false, "io"},
      {500, 13, false, "internal"},
      {502, 14, true, "connect_failed"},
      {408, 4, false, "request_timeout"},
      {431, 8, false, "headers_too_large"},
      {507, 8, false, "insufficient_storage"},
      {429, 8, false, "full"},
      {503, 14, false, "circuit_open"},
      {429, 8, false, "rate_limited"},
      {422, 9, false, "unprocessable"},
      {502, 14, true, "tls_failed"},
  };
  static_assert(std::size(kTable) == static_cast<std::size_t>(ErrorCode::kTlsFailed) + 1,
                "one row per ErrorCode, in the enum's order");
  return kTable[static_cast<int>(code)];
}

}  // namespace ferry
