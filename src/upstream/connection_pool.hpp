// Keep-alive connections to one upstream endpoint, owned by one worker (so the connection limit
// is per worker). Idle connections are kept LIFO (the warmest first) and hold no buffer and no
// pending operation; a connection taken from the pool is first checked for a close or stray
// bytes the upstream sent while it sat idle, and older ones are closed by Sweep().
// Thread safety: one pool per worker per endpoint, used only on that worker's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "core/result.hpp"
#include "core/units.hpp"
#include "runtime/asio.hpp"
#include "upstream/pool_settings.hpp"

namespace ferry::upstream {

struct UpstreamConnection {
  explicit UpstreamConnection(asio::io_context& io) : socket(io) {}
  tcp::socket socket;
  bool reused = false;  // it served an earlier request (so the keep-alive race may hit it)
  std::chrono::steady_clock::time_point idle_since{};
};

class ConnectionPool {
 public:
  ConnectionPool(asio::io_context& io, tcp::endpoint endpoint, PoolSettings settings);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // An idle connection that still looks usable, or a new one; with fresh_only always a new one
  // (the retry after the keep-alive race). Errors: kResourceExhausted at the connection limit,
  // kDeadlineExceeded on connect timeout, kUnavailable if refused.
  Task<Result<std::unique_ptr<UpstreamConnection>>> Acquire(bool fresh_only = false);
  // Gives back a connection that finished a whole exchange and may be reused.
  void Release(std::unique_ptr<UpstreamConnection> connection);
  // Closes a connection that must not be reused (error, cancelled request, not keep-alive).
  void Discard(std::unique_ptr<UpstreamConnection> connection);
  // Closes idle connections older than the idle timeout.
  void Sweep(std::chrono::steady_clock::time_point now);
  void set_settings(const PoolSettings& settings) { settings_ = settings; }

  std::size_t idle() const { return idle_.size(); }
  std::size_t open() const { return idle_.size() + in_use_; }
  const tcp::endpoint& endpoint() const { return endpoint_; }

 private:
  std::unique_ptr<UpstreamConnection> TakeIdle();
  Task<Result<std::unique_ptr<UpstreamConnection>>> Connect();
  asio::io_context& io_;
  tcp::endpoint endpoint_;
  PoolSettings settings_;
  std::vector<std::unique_ptr<UpstreamConnection>> idle_;
  std::size_t in_use_ = 0;
};

}  // namespace ferry::upstream
