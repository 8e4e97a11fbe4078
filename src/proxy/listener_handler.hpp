// The proxy as a server::Handler: one per listener per worker, on the one HTTP server
// (src/server). Each request is an exchange (exchange.cpp) on the worker's current snapshot,
// which the exchange keeps to its end. The server's own answers (a bad head, a limit) take the
// proxy's JSON error shape with an x-request-id, and are counted like the proxy's.
// Thread safety: lives on its worker's thread, like the WorkerState it serves for.
#pragma once

#include <string>

#include "config/config.hpp"
#include "proxy/worker_state.hpp"
#include "server/exchange.hpp"
#include "server/server.hpp"

namespace ferry::proxy {

class ListenerHandler final : public server::Handler {
 public:
  ListenerHandler(WorkerState& worker, std::string listener)
      : worker_(worker), listener_(std::move(listener)) {}

  // One proxied exchange (exchange.cpp).
  Task<void> Serve(server::Request& request, server::Response& response) override;
  void MakeError(int status, std::string_view code, std::string_view message,
                 server::ResponseHead& head, std::string& body) override;
  void ConnectionOpened() override;
  void ConnectionClosed() override;
  void HandshakeFailed() override;
  void Http2(Http2Event event) override;

  const std::string& listener() const { return listener_; }

 private:
  WorkerState& worker_;
  std::string listener_;
};

// The server options of a listener's limits. Without a request_timeout the proxy puts no
// deadline on a client's reads and writes (io_timeout 0), as before the shared server.
server::ServerOptions ServerOptionsOf(const config::Limits& limits);

}  // namespace ferry::proxy
