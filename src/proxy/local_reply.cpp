#include "proxy/local_reply.hpp"

#include <fmt/format.h>

#include <iterator>

#include "http/message.hpp"
#include "http/serializer.hpp"
#include "observability/access_log_entry.hpp"

namespace ferry::proxy {

void MakeErrorReply(LocalReply& out, const Error& error, std::string_view code,
                    std::string_view request_id) {
  const int status = error.info().http_status;
  out.Reset(status, code);
  out.headers.Add("content-type", "application/json");
  fmt::format_to(std::back_inserter(out.body), R"({{"error":{{"code":"{}","status":{},"message":")",
                 code, status);
  observability::AppendJsonStringContent(error.message(), out.body);
  out.body.append(R"("},"request_id":")");
  observability::AppendJsonStringContent(request_id, out.body);
  out.body.append("\"}\n");
}

std::string RenderLocalReply(const LocalReply& reply, std::string_view request_id, bool close,
                             bool head_request) {
  // RFC 9110 6.4.1: a 1xx, 204 or 304 has no body (and Ferry gives it no content-length).
  const int status = reply.status;
  const bool no_body = status < 200 || status == 204 || status == 304;
  std::string out;
  out.reserve(160 + reply.headers.arena_bytes() + reply.body.size());
  fmt::format_to(std::back_inserter(out), "HTTP/1.1 {} {}\r\n", status, http::ReasonPhrase(status));
  reply.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::IsHopByHop(f.name) || http::EqualsIgnoreCase(f.name, "content-length") ||
        http::EqualsIgnoreCase(f.name, "x-request-id")) {
      return;
    }
    out.append(f.name).append(": ").append(f.value).append("\r\n");
  });
  if (!no_body)
    fmt::format_to(std::back_inserter(out), "content-length: {}\r\n", reply.body.size());
  out.append("x-request-id: ").append(request_id).append("\r\n");
  if (close) out.append("connection: close\r\n");
  out.append("\r\n");
  if (!no_body && !head_request) out.append(reply.body);
  return out;
}

}  // namespace ferry::proxy
