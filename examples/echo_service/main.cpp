// echo_service: a small HTTP/1.1 origin for Ferry's demo, tests and benchmarks.
// One thread per connection on blocking POSIX sockets; see README.md for the endpoints.
#include <fmt/format.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "common/server.hpp"
#include "echo_handler.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: echo_service [--listen HOST:PORT] [--name NAME]\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:7001; port 0 picks one)\n"
    "  --name NAME         instance name reported in every answer (default echo)\n";
constexpr int kIdleTimeoutSeconds = 300;  // a connection silent this long is closed

}  // namespace

int main(int argc, char** argv) {
  std::string listen_address = "127.0.0.1:7001";
  std::string name = "echo";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if ((arg == "--listen" || arg == "--name") && i + 1 < argc) {
      (arg == "--listen" ? listen_address : name) = argv[++i];
    } else {
      fmt::print(stderr, "echo_service: unexpected argument '{}'\n{}", arg, kUsage);
      return 2;
    }
  }
  const auto instance = std::make_shared<const std::string>(name);
  return ferry::examples::RunServer(
      "echo_service", name, listen_address,
      [instance](int fd) { ferry::examples::ServeConnection(fd, instance); }, kIdleTimeoutSeconds);
}
