#include "common/server.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>
#include <thread>

namespace ferry::examples {
namespace {

// Binds and listens. Returns the socket, or -1 after printing why.
int Listen(std::string_view program, const std::string& address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string::npos) {
    fmt::print(stderr, "{}: bad --listen '{}': expected HOST:PORT\n", program, address);
    return -1;
  }
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* result = nullptr;
  if (const int rc =
          getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &result);
      rc != 0) {
    fmt::print(stderr, "{}: bad --listen '{}': {}\n", program, address, gai_strerror(rc));
    return -1;
  }
  const int fd = socket(result->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(fd, result->ai_addr, result->ai_addrlen) != 0 || listen(fd, 4096) != 0) {
    fmt::print(stderr, "{}: cannot listen on {}: {}\n", program, address, std::strerror(errno));
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

int RunServer(std::string_view program, const std::string& name, const std::string& address,
              std::function<void(int fd)> serve, int idle_timeout_seconds) {
  // SIGTERM and SIGINT are taken by one thread with sigwait; every other thread blocks them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  const int listener = Listen(program, address);
  if (listener < 0) return 1;
  fmt::print("{} {} listening on {}\n", program, name, LocalAddress(listener));
  std::fflush(stdout);

  std::thread([stop_signals, program = std::string(program), name] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    fmt::print("{} {} stopping on signal {}\n", program, name, signal_number);
    std::fflush(stdout);
    // Connections are served by detached threads; ending the process ends them, which is what a
    // demo service needs (no state to save). _Exit skips destructors those threads may still use.
    std::_Exit(0);
  }).detach();

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
    const timeval idle{idle_timeout_seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof idle);
    try {
      std::thread(serve, fd).detach();
    } catch (const std::system_error& e) {
      fmt::print(stderr, "{}: cannot start a thread: {}\n", program, e.what());
      close(fd);
    }
  }
}

}  // namespace ferry::examples
