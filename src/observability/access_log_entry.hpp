// AccessLogEntry: what one finished exchange leaves in the access log, and its rendering as one
// JSON line. Thread safety: plain values and a pure function. Ownership: the entry borrows its
// strings (string_view) from the request; build it, render it, drop it. Errors: none; bytes that
// are not valid UTF-8 are written as U+FFFD so the line is always valid JSON.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry::observability {

struct AccessLogEntry {
  std::chrono::system_clock::time_point time;  // when the request arrived; "time", RFC 3339 UTC, ms
  std::string_view method;                     // "method", e.g. GET
  std::string_view path;                       // "path": request target as received, with query
  int status = 0;                              // "status": response status; 0 if none was sent
  std::uint64_t bytes_received = 0;            // "bytes_received": request body bytes
  std::uint64_t bytes_sent = 0;                // "bytes_sent": response body bytes
  std::chrono::nanoseconds duration{0};        // "duration": seconds, microsecond precision
  std::string_view upstream;                   // "upstream": endpoint host:port; "" if none
  std::string_view request_id;                 // "request_id": x-request-id
  std::string_view listener;                   // "listener": listener name
  std::string_view route;                      // "route": matched route name; "" if none
  std::string_view client;                     // "client": peer address ip:port
  std::string_view error;  // "error": why the response is incomplete (see docs); omitted if ""
};

// Appends the entry as one JSON object followed by '\n'. Field order is fixed:
// time, method, path, status, bytes_received, bytes_sent, duration, upstream, request_id,
// listener, route, client, and error only when it is not empty.
void AppendAccessLogLine(const AccessLogEntry& entry, std::string& out);

// Appends `value` as the inside of a JSON string: quotes, backslashes and control characters
// escaped, invalid UTF-8 replaced with U+FFFD.
void AppendJsonStringContent(std::string_view value, std::string& out);

// Appends a time point as RFC 3339 UTC with a fraction of `fraction_digits` digits, 3
// (milliseconds: 2024-05-01T12:34:56.789Z, the access log's) or 6 (microseconds, the bus's),
// rounded down: a time before 1970 counts up from the second before it.
void AppendRfc3339(std::chrono::system_clock::time_point time, int fraction_digits,
                   std::string& out);

}  // namespace ferry::observability
