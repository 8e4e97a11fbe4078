#include "echo_handler.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <string_view>
#include <thread>

#include "common/http_connection.hpp"
#include "crc32.hpp"

namespace ferry::examples {
namespace {

constexpr std::size_t kPiece = 64 * 1024;             // /bytes and /chunked write this much at once
constexpr std::uint64_t kMaxGenerated = 1ull << 40;   // 1 TiB: /bytes/N above this is a 400
constexpr std::uint64_t kMaxDelayMs = 5 * 60 * 1000;  // /delay/MS above this is a 400

void AppendJsonString(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
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
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;  // bytes >= 0x80 pass through; clients send UTF-8 or nothing worse
        }
    }
  }
  out += '"';
}

bool ParseNumber(std::string_view text, std::uint64_t& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

// Everything the service is told about one exchange.
struct Exchange {
  Connection& connection;
  const Request& request;
  const std::string& instance;
  std::string_view path;         // target without the query
  bool head_only = false;        // HEAD: headers as for GET, no body
  bool close_after = false;      // Connection: close is sent and the connection ends
  std::uint64_t body_bytes = 0;  // request body bytes read
};

std::string Head(const Exchange& ex, int status, std::string_view content_type,
                 std::string_view framing) {
  std::string head = fmt::format("HTTP/1.1 {} {}\r\nx-served-by: {}\r\n", status,
                                 ReasonPhrase(status), ex.instance);
  if (!content_type.empty()) head += fmt::format("content-type: {}\r\n", content_type);
  head += framing;
  if (ex.close_after) {
    head += "connection: close\r\n";
  } else if (ex.request.version_minor == 0) {
    head += "connection: keep-alive\r\n";
  }
  head += "\r\n";
  return head;
}

bool SendFixed(Exchange& ex, int status, std::string_view content_type, std::string_view body) {
  const bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
  std::string message = Head(ex, status, no_body ? "" : content_type,
                             no_body ? "" : fmt::format("content-length: {}\r\n", body.size()));
  if (!no_body && !ex.head_only) message += body;
  return ex.connection.Write(message);
}

std::string EchoJson(const Exchange& ex) {
  std::string json = "{\"instance\":";
  AppendJsonString(json, ex.instance);
  json += ",\"method\":";
  AppendJsonString(json, ex.request.method);
  json += ",\"path\":";
  AppendJsonString(json, ex.request.target);
  json += ",\"headers\":{";
  // Repeated fields are joined with ", " as RFC 9110 allows, in the order they came.
  std::vector<std::pair<std::string, std::string>> merged;
  for (const auto& [name, value] : ex.request.headers) {
    auto it = std::find_if(merged.begin(), merged.end(),
                           [&name = name](const auto& kv) { return kv.first == name; });
    if (it == merged.end()) {
      merged.emplace_back(name, value);
    } else {
      it->second += ", ";
      it->second += value;
    }
  }
  for (std::size_t i = 0; i < merged.size(); ++i) {
    if (i > 0) json += ',';
    AppendJsonString(json, merged[i].first);
    json += ':';
    AppendJsonString(json, merged[i].second);
  }
  json += fmt::format("}},\"body_bytes\":{}}}\n", ex.body_bytes);
  return json;
}

bool SendEcho(Exchange& ex, int status) {
  return SendFixed(ex, status, "application/json", EchoJson(ex));
}

bool SendError(Exchange& ex, int status, std::string_view message) {
  std::string json = "{\"instance\":";
  AppendJsonString(json, ex.instance);
  json += ",\"error\":";
  AppendJsonString(json, message);
  json += "}\n";
  return SendFixed(ex, status, "application/json", json);
}

const std::array<char, kPiece>& Pattern() {
  static const std::array<char, kPiece> pattern = [] {
    std::array<char, kPiece> p{};
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>('a' + i % 26);
    return p;
  }();
  return pattern;
}

bool SendBytes(Exchange& ex, std::uint64_t size) {
  if (!ex.connection.Write(
          Head(ex, 200, "application/octet-stream", fmt::format("content-length: {}\r\n", size)))) {
    return false;
  }
  if (ex.head_only) return true;
  const auto& pattern = Pattern();
  while (size > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, kPiece));
    if (!ex.connection.Write(std::string_view(pattern.data(), n))) return false;
    size -= n;
  }
  return true;
}

bool SendChunked(Exchange& ex, std::uint64_t size) {
  if (!ex.connection.Write(
          Head(ex, 200, "application/octet-stream", "transfer-encoding: chunked\r\n"))) {
    return false;
  }
  if (ex.head_only) return true;
  const auto& pattern = Pattern();
  while (size > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, kPiece));
    if (!ex.connection.Write(fmt::format("{:x}\r\n", n)) ||
        !ex.connection.Write(std::string_view(pattern.data(), n)) || !ex.connection.Write("\r\n")) {
      return false;
    }
    size -= n;
  }
  return ex.connection.Write("0\r\n\r\n");
}

// HTTP/1.0 has no chunked coding: the body ends where the connection does.
bool SendUntilClose(Exchange& ex, std::uint64_t size) {
  const auto& pattern = Pattern();
  while (size > 0) {
    const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size, kPiece));
    if (!ex.connection.Write(std::string_view(pattern.data(), n))) return false;
    size -= n;
  }
  return true;
}

// Answers one request whose head has been read. False when the connection must end.
bool Handle(Connection& connection, const Request& request, const std::string& instance) {
  Exchange ex{connection, request, instance};
  const std::string_view target(request.target);
  ex.path = target.substr(0, target.find('?'));
  ex.head_only = request.method == "HEAD";
  ex.close_after = !request.keep_alive;

  if (request.expect_continue && request.HasBody()) {
    if (!connection.Write("HTTP/1.1 100 Continue\r\n\r\n")) return false;
  }

  if (ex.path == "/upload" && (request.method == "POST" || request.method == "PUT")) {
    Crc32 crc;
    std::uint64_t received = 0;
    if (!connection.ReadBody(request, [&](std::string_view piece) {
          crc.Update(piece);
          received += piece.size();
        })) {
      ex.close_after = true;
      SendError(ex, 400, "bad request body");
      return false;
    }
    std::string json = "{\"instance\":";
    AppendJsonString(json, instance);
    json += fmt::format(",\"received\":{},\"crc32\":{}}}\n", received, crc.Value());
    return SendFixed(ex, 200, "application/json", json) && !ex.close_after;
  }

  // Any other body is read and dropped, so the next request on the connection starts cleanly.
  if (!connection.ReadBody(request,
                           [&](std::string_view piece) { ex.body_bytes += piece.size(); })) {
    ex.close_after = true;
    SendError(ex, 400, "bad request body");
    return false;
  }

  auto number_after = [&](std::string_view prefix, std::uint64_t& out) {
    return ex.path.substr(0, prefix.size()) == prefix &&
           ParseNumber(ex.path.substr(prefix.size()), out);
  };
  std::uint64_t n = 0;
  bool ok = true;
  if (ex.path == "/health") {
    std::string json = "{\"status\":\"ok\",\"instance\":";
    AppendJsonString(json, instance);
    json += "}\n";
    ok = SendFixed(ex, 200, "application/json", json);
  } else if (ex.path.starts_with("/status/")) {
    if (number_after("/status/", n) && n >= 200 && n <= 599) {
      ok = SendEcho(ex, static_cast<int>(n));
    } else {
      ok = SendError(ex, 400, "status must be 200..599");
    }
  } else if (ex.path.starts_with("/delay/")) {
    if (number_after("/delay/", n) && n <= kMaxDelayMs) {
      std::this_thread::sleep_for(std::chrono::milliseconds(n));
      ok = SendEcho(ex, 200);
    } else {
      ok = SendError(ex, 400, "delay must be 0..300000 ms");
    }
  } else if (ex.path.starts_with("/bytes/")) {
    if (number_after("/bytes/", n) && n <= kMaxGenerated) {
      ok = SendBytes(ex, n);
    } else {
      ok = SendError(ex, 400, "size must be 0..2^40 bytes");
    }
  } else if (ex.path.starts_with("/chunked/")) {
    if (number_after("/chunked/", n) && n <= kMaxGenerated) {
      if (request.version_minor == 0) {
        ex.close_after = true;
        ok = connection.Write(Head(ex, 200, "application/octet-stream", "")) &&
             (ex.head_only || SendUntilClose(ex, n));
      } else {
        ok = SendChunked(ex, n);
      }
    } else {
      ok = SendError(ex, 400, "size must be 0..2^40 bytes");
    }
  } else if (ex.path == "/close") {
    ex.close_after = true;
    ok = SendEcho(ex, 200);
  } else {
    ok = SendEcho(ex, 200);
  }
  return ok && !ex.close_after;
}

}  // namespace

void ServeConnection(int fd, std::shared_ptr<const std::string> instance) {
  Connection connection(fd);
  for (;;) {
    Request request;
    const ReadStatus status = connection.ReadHead(request);
    if (status == ReadStatus::kClosed) return;
    if (status != ReadStatus::kOk) {
      const bool too_large = status == ReadStatus::kTooLarge;
      const std::string body =
          too_large ? "{\"error\":\"request head too large\"}\n" : "{\"error\":\"bad request\"}\n";
      connection.Write(
          fmt::format("HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n"
                      "connection: close\r\n\r\n{}",
                      too_large ? 431 : 400, too_large ? ReasonPhrase(431) : ReasonPhrase(400),
                      body.size(), body));
      return;
    }
    if (!Handle(connection, request, *instance)) return;
  }
}

}  // namespace ferry::examples
