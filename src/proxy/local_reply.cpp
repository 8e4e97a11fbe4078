#include "proxy/local_reply.hpp"

#include <fmt/format.h>

#include <iterator>

#include "http/message.hpp"
#include "http/serializer.hpp"
#include "observability/access_log_entry.hpp"
#include "server/exchange.hpp"

namespace ferry::proxy {

void MakeErrorReply(LocalReply& out, const Error& error, std::string_view code,
                    std::string_view request_id) {
  MakeErrorReply(out, error.info().http_status, code, error.message(), request_id);
}

void MakeErrorReply(LocalReply& out, int status, std::string_view code, std::string_view message,
                    std::string_view request_id) {
  out.Reset(status, code);
  out.headers.Add("content-type", "application/json");
  fmt::format_to(std::back_inserter(out.body), R"({{"error":{{"code":"{}","status":{},"message":")",
                 code, status);
  observability::AppendJsonStringContent(message, out.body);
  out.body.append(R"("},"request_id":")");
  observability::AppendJsonStringContent(request_id, out.body);
  out.body.append("\"}\n");
}

void MakeReplyHead(const LocalReply& reply, std::string_view request_id,
                   server::ResponseHead& head) {
  head.status = reply.status;
  head.reason = {};
  head.headers.Clear();
  reply.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::IsHopByHop(f.name) || http::EqualsIgnoreCase(f.name, "content-length") ||
        http::EqualsIgnoreCase(f.name, "x-request-id")) {
      return;
    }
    head.headers.Add(f.name, f.value);
  });
  head.headers.Add("x-request-id", request_id);
}

}  // namespace ferry::proxy
