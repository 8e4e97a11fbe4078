#include "proxy/listener_handler.hpp"

#include "proxy/local_reply.hpp"

namespace ferry::proxy {

void ListenerHandler::MakeError(int status, std::string_view code, std::string_view message,
                                server::ResponseHead& head, std::string& body) {
  LocalReply reply;
  const std::string request_id = worker_.NewRequestId();
  MakeErrorReply(reply, status, code, message, request_id);
  worker_.LocalReplyCounter(reply.code).Add(worker_.slot());
  MakeReplyHead(reply, request_id, head);
  body = std::move(reply.body);
}

void ListenerHandler::ConnectionOpened() {
  worker_.metrics()->downstream_total.Add(worker_.slot());
  worker_.metrics()->downstream_active.Add(worker_.slot(), 1);
}

void ListenerHandler::ConnectionClosed() {
  worker_.metrics()->downstream_active.Add(worker_.slot(), -1);
}

void ListenerHandler::HandshakeFailed() {
  worker_.metrics()->tls_handshake_failures.Add(worker_.slot());
}

server::ServerOptions ServerOptionsOf(const config::Limits& limits) {
  server::ServerOptions options;
  options.max_header_bytes = static_cast<std::size_t>(limits.max_header_bytes);
  options.max_headers = limits.max_headers;
  options.max_body_bytes = limits.max_body_bytes;
  options.header_read_timeout = limits.header_read_timeout;
  options.idle_timeout = limits.idle_timeout;
  options.request_timeout = limits.request_timeout;
  options.io_timeout = Duration::zero();
  return options;
}

}  // namespace ferry::proxy
