// echo_service: a small HTTP/1.1 origin for Ferry's demo, tests and benchmarks.
// One thread per connection on blocking POSIX sockets; see README.md for the endpoints.
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "echo_handler.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: echo_service [--listen HOST:PORT] [--name NAME]\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:7001; port 0 picks one)\n"
    "  --name NAME         instance name reported in every answer (default echo)\n";
constexpr int kIdleTimeoutSeconds = 300;  // a connection silent this long is closed

// Binds and listens on "host:port" or "[v6]:port". Returns the socket, or -1 after printing why.
int Listen(const std::string& address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    fmt::print(stderr, "echo_service: bad --listen '{}': expected HOST:PORT\n", address);
    return -1;
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &result);
      rc != 0) {
    fmt::print(stderr, "echo_service: bad --listen '{}': {}\n", address, gai_strerror(rc));
    return -1;
  }
  const int fd = socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, result->ai_addr, result->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
    fmt::print(stderr, "echo_service: cannot listen on {}: {}\n", address, std::strerror(errno));
    freeaddrinfo(result);
    if (fd >= 0) close(fd);
    return -1;
  }
  freeaddrinfo(result);
  return fd;
}

std::string LocalAddress(int fd) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length);
  char text[INET6_ADDRSTRLEN] = {};
  if (storage.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&storage);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    return fmt::format("[{}]:{}", text, ntohs(a->sin6_port));
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&storage);
  inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
  return fmt::format("{}:{}", text, ntohs(a->sin_port));
}

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

  // SIGTERM and SIGINT are taken by one thread with sigwait; every other thread blocks them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int listener = Listen(listen_address);
  if (listener < 0) return 1;
  fmt::print("echo_service {} listening on {}\n", name, LocalAddress(listener));
  std::fflush(stdout);

  std::thread([stop_signals, name] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    fmt::print("echo_service {} stopping on signal {}\n", name, signal_number);
    std::fflush(stdout);
    // Connections are served by detached threads; ending the process ends them, which is what a
    // demo origin needs (no state to save). _Exit skips destructors those threads may still use.
    std::_Exit(0);
  }).detach();

  const auto instance = std::make_shared<const std::string>(name);
  for (;;) {
    const int fd = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));  // let connections close
      }
      continue;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const timeval idle{kIdleTimeoutSeconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    try {
      std::thread(ferry::examples::ServeConnection, fd, instance).detach();
    } catch (const std::system_error& e) {
      fmt::print(stderr, "echo_service: cannot start a thread: {}\n", e.what());
      close(fd);
    }
  }
}
