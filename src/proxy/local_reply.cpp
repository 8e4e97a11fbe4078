#include "proxy/local_reply.hpp"

#include <fmt/format.h>

#include "http/message.hpp"
#include "observability/access_log_entry.hpp"

namespace ferry::proxy {

std::string RenderLocalReply(const LocalReply& reply, std::string_view request_id, bool close) {
  std::string body =
      fmt::format(R"({{"error":{{"code":"{}","status":{},"message":")", reply.code, reply.status);
  observability::AppendJsonStringContent(reply.message, body);
  body.append(R"("},"request_id":")");
  observability::AppendJsonStringContent(request_id, body);
  body.append("\"}\n");
  return fmt::format(
      "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n"
      "x-request-id: {}\r\n{}\r\n{}",
      reply.status, http::ReasonPhrase(reply.status), body.size(), request_id,
      close ? "connection: close\r\n" : "", body);
}

}  // namespace ferry::proxy
