#include "upstream/connection_pool.hpp"

#include <fmt/format.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "runtime/deadline.hpp"

namespace ferry::upstream {
namespace {

// True if the peer closed an idle connection or sent bytes nobody asked for.
bool LooksClosed(tcp::socket& socket) {
  char byte;
  const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n == 0) return true;                            // FIN
  if (n > 0) return true;                             // stray bytes: unusable
  return !(errno == EAGAIN || errno == EWOULDBLOCK);  // reset or other error
}

}  // namespace

ConnectionPool::ConnectionPool(asio::io_context& io, tcp::endpoint endpoint, PoolSettings settings)
    : io_(io), endpoint_(std::move(endpoint)), settings_(settings) {}

ConnectionPool::~ConnectionPool() = default;

std::unique_ptr<UpstreamConnection> ConnectionPool::TakeIdle() {
  const auto now = std::chrono::steady_clock::now();
  while (!idle_.empty()) {
    std::unique_ptr<UpstreamConnection> c = std::move(idle_.back());
    idle_.pop_back();
    if (now - c->idle_since < settings_.idle_timeout && !LooksClosed(c->socket)) {
      ++in_use_;
      return c;
    }
  }
  return nullptr;
}

Task<Result<std::unique_ptr<UpstreamConnection>>> ConnectionPool::Acquire(bool fresh_only) {
  if (!fresh_only) {
    if (auto c = TakeIdle()) co_return c;
  }
  auto connected = co_await Connect();
  co_return connected;
}

Task<Result<std::unique_ptr<UpstreamConnection>>> ConnectionPool::Connect() {
  if (open() >= settings_.max_connections) {
    co_return Fail(ErrorCode::kResourceExhausted,
                   fmt::format("connection limit ({}) reached for {}:{}", settings_.max_connections,
                               endpoint_.address().to_string(), endpoint_.port()));
  }
  auto c = std::make_unique<UpstreamConnection>(io_);
  ++in_use_;  // counts against the limit while connecting
  runtime::Deadline<tcp::socket> deadline(io_, c->socket);
  deadline.Arm(settings_.connect_timeout);
  auto [ec] = co_await c->socket.async_connect(endpoint_, kNoThrow);
  deadline.Disarm();
  if (ec) {
    --in_use_;
    const std::string where =
        fmt::format("{}:{}", endpoint_.address().to_string(), endpoint_.port());
    if (deadline.expired()) {
      co_return Fail(ErrorCode::kDeadlineExceeded, "connect to " + where + " timed out");
    }
    co_return Fail(ErrorCode::kUnavailable, "connect to " + where + ": " + ec.message());
  }
  error_code ignored;
  c->socket.set_option(tcp::no_delay(true), ignored);
  co_return c;
}

void ConnectionPool::Release(std::unique_ptr<UpstreamConnection> connection) {
  --in_use_;
  connection->reused = true;
  connection->idle_since = std::chrono::steady_clock::now();
  idle_.push_back(std::move(connection));
}

void ConnectionPool::Discard(std::unique_ptr<UpstreamConnection> connection) {
  --in_use_;
  error_code ignored;
  connection->socket.close(ignored);
}

void ConnectionPool::Sweep(std::chrono::steady_clock::time_point now) {
  std::erase_if(idle_, [&](const std::unique_ptr<UpstreamConnection>& c) {
    return now - c->idle_since >= settings_.idle_timeout;
  });
}

}  // namespace ferry::upstream
