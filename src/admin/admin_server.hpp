// The admin API on its own listener (loopback by default): GET /ready, /live, /metrics
// (Prometheus text), /config (effective config as JSON), /stats (JSON), and the writes the node
// registers (POST /breakers/<service>). It runs on the main
// thread's event loop, never on a worker, so a busy proxy cannot starve it and it cannot slow
// the proxy. Handlers are plain functions returning a body; src/server does the HTTP (limits,
// timeouts, keep-alive, its own 400/408/413/431 answers).
// Thread safety: everything runs on the io_context given to the constructor.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"
#include "server/server.hpp"

namespace ferry::observability {
class Counter;
}  // namespace ferry::observability

namespace ferry::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using AdminHandler = std::function<AdminResponse()>;

// A write: POST to a path under a registered prefix, with its body (up to 64 KiB).
struct AdminRequest {
  std::string_view method;
  std::string_view path;
  std::string_view body;
};
using AdminWriteHandler = std::function<AdminResponse(const AdminRequest&)>;

class AdminServer final : public server::Handler {
 public:
  // routes: GET (and HEAD) of an exact path. write_routes: POST to any path that starts with
  // the key (a prefix ending in '/'); other methods there are 405.
  AdminServer(asio::io_context& io, std::map<std::string, AdminHandler> routes,
              std::map<std::string, AdminWriteHandler> write_routes = {});
  ~AdminServer() override;
  // TLS on connections accepted from now on (`admin.tls`); null: plain TCP. Call before Start
  // for the first connections to have it; a reload calls it again with the new context.
  void SetTls(std::shared_ptr<const tls::ServerContext> context);
  // Failed client TLS handshakes are added to `counter` in `slot` (server/handshake_failures.hpp;
  // null: not counted).
  void CountHandshakeFailures(observability::Counter* counter, std::size_t slot) {
    handshake_failures_ = counter;
    metrics_slot_ = slot;
  }
  // Binds and starts accepting. Errors: kIo if the address cannot be bound.
  Result<void> Start(const config::Address& listen);
  // Stops accepting and ends the open connections.
  void Stop();
  tcp::endpoint local_endpoint() const;
  std::string local_address() const;  // "127.0.0.1:9901"
  // Serves one connection accepted elsewhere (tests give one end of a MemoryStream pair).
  void ServeConnection(std::unique_ptr<runtime::Stream> stream);

  // The answer to one request: a plain call, so each route is testable without any I/O.
  AdminResponse Handle(std::string_view method, std::string_view path,
                       std::string_view body = {}) const;
  Task<void> Serve(server::Request& request, server::Response& response) override;
  void HandshakeFailed() override;

 private:
  asio::io_context& io_;
  std::map<std::string, AdminHandler> routes_;
  std::map<std::string, AdminWriteHandler> write_routes_;
  server::Server server_;
  std::string local_ip_;
  std::uint16_t local_port_ = 0;
  observability::Counter* handshake_failures_ = nullptr;
  std::size_t metrics_slot_ = 0;
};

}  // namespace ferry::admin
