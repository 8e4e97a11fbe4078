// Server::State: what a server shares with its connections, HTTP/1.1 (server.cpp) and HTTP/2
// (http2_connection.cpp). Internal to src/server: included by its .cpp files only (it names
// Asio types).
// Thread safety: the server's event loop only.
#pragma once

#include <list>
#include <memory>
#include <vector>

#include "runtime/acceptor.hpp"
#include "runtime/asio.hpp"
#include "runtime/buffer_pool.hpp"
#include "runtime/task_group.hpp"
#include "server/server.hpp"

namespace ferry::server {

class Connection;
class Http2Connection;
struct Parked;

struct Server::State {
  State(asio::io_context& io, ServerOptions o, Handler& h)
      : io(io),
        options(std::make_shared<const ServerOptions>(std::move(o))),
        handler(h),
        tasks(io.get_executor()),
        sweep(io) {}
  asio::io_context& io;
  std::shared_ptr<const ServerOptions> options;
  Handler& handler;
  runtime::BufferPool buffers;  // declared before tasks: frames give their buffers back here
  runtime::TaskGroup tasks;
  std::vector<std::unique_ptr<runtime::Acceptor>> acceptors;
  std::list<Connection*> connections;
  std::list<Http2Connection*> http2_connections;
  std::list<Parked*> parked;  // idle connections without a coroutine (Park)
  asio::steady_timer sweep;   // parks idle connections, times parked ones out
  bool draining = false;
  bool detached = false;  // the Server is gone, and its handler may be: no more calls to it
};

}  // namespace ferry::server
