// The process around an example service: listen, accept, one detached thread per connection,
// and exit on SIGTERM or SIGINT. Blocking POSIX sockets, no event loop, so a service builds in
// seconds. RunServer owns the process's signal mask and SIGPIPE disposition; call it once, from
// main, before starting any other thread.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace ferry::examples {

// Listens on "host:port" or "[v6]:port" (port 0 picks one), prints
// "<program> <name> listening on <host:port>", and serves every accepted connection with
// `serve(fd)` on a thread of its own (`serve` owns and closes the socket; idle connections time
// out after `idle_timeout_seconds`). On SIGTERM or SIGINT prints "<program> <name> stopping on
// signal N" and exits the process with 0. Returns 1, after printing why, if it cannot listen.
int RunServer(std::string_view program, const std::string& name, const std::string& address,
              std::function<void(int fd)> serve, int idle_timeout_seconds = 300);

}  // namespace ferry::examples
