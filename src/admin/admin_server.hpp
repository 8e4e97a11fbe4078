// The admin API on its own listener (loopback by default): GET /ready, /live, /metrics
// (Prometheus text), /config (effective config as JSON), /stats (JSON). It runs on the main
// thread's event loop, never on a worker, so a busy proxy cannot starve it and it cannot slow
// the proxy. Handlers are plain functions returning a body; the server does the HTTP.
// Thread safety: everything runs on the io_context given to Start().
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"

namespace ferry::admin {

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

using AdminHandler = std::function<AdminResponse()>;

class AdminServer {
 public:
  AdminServer(asio::io_context& io, std::map<std::string, AdminHandler> routes);
  ~AdminServer();
  // Binds and starts accepting. Errors: kIo if the address cannot be bound.
  Result<void> Start(const config::Address& listen);
  void Stop();
  tcp::endpoint local_endpoint() const;

 private:
  Task<void> AcceptLoop();
  Task<void> Serve(tcp::socket socket);
  AdminResponse Handle(const std::string& method, const std::string& path) const;

  asio::io_context& io_;
  std::map<std::string, AdminHandler> routes_;
  std::unique_ptr<tcp::acceptor> acceptor_;
};

}  // namespace ferry::admin
