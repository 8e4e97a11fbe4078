#include "common/json_server.hpp"

#include <fmt/format.h>

namespace ferry::examples {
namespace {

// A JSON string literal, quotes included.
std::string JsonQuote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

bool WriteAnswer(Connection& connection, const JsonAnswer& answer, bool close) {
  return connection.Write(fmt::format(
      "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{}",
      answer.status, ReasonPhrase(answer.status), answer.json.size(),
      close ? "connection: close\r\n" : "", answer.json));
}

JsonAnswer Error(int status, std::string_view message) {
  return {status, fmt::format("{{\"error\":{}}}\n", JsonQuote(message))};
}

}  // namespace

void ServeJsonRequests(int fd, const JsonHandler& handler, std::size_t max_body) {
  Connection connection(fd);
  for (;;) {
    Request request;
    const ReadStatus status = connection.ReadHead(request);
    if (status == ReadStatus::kClosed) return;
    if (status != ReadStatus::kOk) {
      WriteAnswer(connection,
                  status == ReadStatus::kTooLarge ? Error(431, "request head too large")
                                                  : Error(400, "bad request"),
                  true);
      return;
    }
    if (!request.chunked && request.content_length > max_body) {
      WriteAnswer(connection, Error(413, fmt::format("the body is over {} bytes", max_body)), true);
      return;
    }
    if (request.expect_continue && request.HasBody() &&
        !connection.Write("HTTP/1.1 100 Continue\r\n\r\n")) {
      return;
    }
    std::string body;
    bool too_large = false;
    if (!connection.ReadBody(request, [&](std::string_view piece) {
          if (body.size() + piece.size() > max_body) too_large = true;
          if (!too_large) body.append(piece);
        })) {
      WriteAnswer(connection, Error(400, "bad request body"), true);
      return;
    }
    if (too_large) {
      WriteAnswer(connection, Error(413, fmt::format("the body is over {} bytes", max_body)), true);
      return;
    }
    if (!WriteAnswer(connection, handler(request, body), !request.keep_alive) ||
        !request.keep_alive) {
      return;
    }
  }
}

}  // namespace ferry::examples
