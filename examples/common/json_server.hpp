// Serves simple JSON endpoints on one connection: each request's body is read whole (up to a
// limit) and handed to a function that returns the status and JSON body to answer. For services
// whose requests are small (the demo's order and payment services); the echo service streams
// instead. Blocks until the peer closes; owns and closes `fd`. Thread-safe if `handler` is.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "common/http_connection.hpp"

namespace ferry::examples {

struct JsonAnswer {
  int status = 200;  // the HTTP status
  std::string json;  // the body, sent as application/json
};

using JsonHandler = std::function<JsonAnswer(const Request& request, const std::string& body)>;

// A body over `max_body` bytes is answered 413 without calling `handler`, and the connection is
// closed; so are requests with bad framing (400).
void ServeJsonRequests(int fd, const JsonHandler& handler, std::size_t max_body = 64 * 1024);

}  // namespace ferry::examples
