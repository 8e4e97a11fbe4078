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

void ListenerHandler::Http2(Http2Event event) {
  ProxyMetrics& m = *worker_.metrics();
  switch (event) {
    case Http2Event::kConnection:
      m.http2_connections.Add(worker_.slot());
      break;
    case Http2Event::kStream:
      m.http2_streams.Add(worker_.slot());
      break;
    case Http2Event::kFlood:
      m.http2_flood_closes.Add(worker_.slot());
      break;
  }
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
  options.http2_options.max_concurrent_streams = limits.max_concurrent_streams;
  options.http2_options.stream_reset_burst = limits.stream_reset_burst;
  options.http2_options.stream_reset_rate = limits.stream_reset_rate;
  return options;
}

}  // namespace ferry::proxy
