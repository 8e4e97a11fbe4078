#include "upstream/stream_pool.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "config/config.hpp"
#include "runtime/connect.hpp"

namespace ferry::upstream {

StreamPool::Lease::Lease(std::shared_ptr<StreamPool> pool,
                         std::shared_ptr<PooledConnection> connection)
    : pool_(std::move(pool)), connection_(std::move(connection)) {
  reused_ = connection_->finished > 0;
}

StreamPool::Lease& StreamPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    if (connection_) Release(false);
    pool_ = std::move(other.pool_);
    connection_ = std::move(other.connection_);
    reused_ = other.reused_;
  }
  return *this;
}

StreamPool::Lease::~Lease() {
  if (connection_) Release(false);
}

void StreamPool::Lease::Release(bool reusable) {
  if (!connection_) return;
  pool_->Return(connection_, reusable);
  connection_.reset();
  pool_.reset();
}

std::shared_ptr<StreamPool> StreamPool::Create(asio::io_context& io, std::string ip,
                                               std::uint16_t port, PoolSettings settings) {
  return std::shared_ptr<StreamPool>(new StreamPool(io, std::move(ip), port, settings));
}

StreamPool::StreamPool(asio::io_context& io, std::string ip, std::uint16_t port,
                       PoolSettings settings)
    : io_(io), ip_(std::move(ip)), port_(port), settings_(settings) {}

StreamPool::~StreamPool() {
  for (const auto& c : available_) c->stream->Close();
}

std::size_t StreamPool::idle() const {
  return static_cast<std::size_t>(std::count_if(available_.begin(), available_.end(),
                                                [](const auto& c) { return c->active == 0; }));
}

std::shared_ptr<PooledConnection> StreamPool::TakeAvailable(bool replayable) {
  const auto now = std::chrono::steady_clock::now();
  while (!available_.empty()) {
    std::shared_ptr<PooledConnection> c = available_.back();
    if (c->active > 0) {
      // Shared (HTTP/2): it stays available while it has room after this lease.
      if (c->active + 1 >= c->capacity) available_.pop_back();
      return c;
    }
    available_.pop_back();
    const Duration idle = now - c->idle_since;
    const bool trusted = replayable && idle < kTrustIdleFor;
    if (idle < settings_.idle_timeout && (trusted || runtime::IdleConnectionUsable(*c->stream))) {
      if (c->capacity > 1) available_.push_back(c);
      return c;
    }
    Close(*c);
  }
  return nullptr;
}

Task<Result<StreamPool::Lease>> StreamPool::Acquire(bool fresh_only, Duration connect_within,
                                                    runtime::IoWatch* watch) {
  // The lease holds the pool; so does this frame while it connects.
  std::shared_ptr<StreamPool> self = shared_from_this();
  if (!fresh_only) {
    if (std::shared_ptr<PooledConnection> c = TakeAvailable()) {
      ++c->active;
      co_return Lease(std::move(self), std::move(c));
    }
  }
  if (open_ >= settings_.max_connections) {
    co_return Fail(ErrorCode::kResourceExhausted,
                   fmt::format("connection limit ({}) reached for {}", settings_.max_connections,
                               config::Address{ip_, port_}.ToString()));
  }
  ++open_;  // counts against the limit while connecting
  const Duration timeout = std::min(settings_.connect_timeout, connect_within);
  auto stream = co_await runtime::Connect(io_, ip_, port_, timeout, watch);
  if (!stream) {
    --open_;
    co_return tl::unexpected(stream.error());
  }
  ++connects_;
  auto c = std::make_shared<PooledConnection>();
  c->stream = std::move(*stream);
  c->active = 1;
  co_return Lease(std::move(self), std::move(c));
}

StreamPool::Lease StreamPool::TryAcquire(bool replayable) {
  std::shared_ptr<PooledConnection> c = TakeAvailable(replayable);
  if (!c) return Lease();
  ++c->active;
  return Lease(shared_from_this(), std::move(c));
}

void StreamPool::Adopt(std::unique_ptr<runtime::Stream> stream, std::uint32_t capacity) {
  auto c = std::make_shared<PooledConnection>();
  c->stream = std::move(stream);
  c->capacity = std::max<std::uint32_t>(capacity, 1);
  c->idle_since = std::chrono::steady_clock::now();
  ++open_;
  available_.push_back(std::move(c));
}

void StreamPool::Return(const std::shared_ptr<PooledConnection>& connection, bool reusable) {
  PooledConnection& c = *connection;
  --c.active;
  if (reusable) {
    ++c.finished;
  } else {
    c.closing = true;
  }
  const bool listed =
      std::find(available_.begin(), available_.end(), connection) != available_.end();
  if (c.closing) {
    if (listed) std::erase(available_, connection);
    if (c.active == 0) Close(c);
    return;
  }
  if (c.active == 0) c.idle_since = std::chrono::steady_clock::now();
  if (!listed) available_.push_back(connection);
}

void StreamPool::Close(PooledConnection& connection) {
  connection.stream->Close();
  --open_;
}

void StreamPool::Sweep(std::chrono::steady_clock::time_point now) {
  std::erase_if(available_, [&](const std::shared_ptr<PooledConnection>& c) {
    if (c->active > 0 || now - c->idle_since < settings_.idle_timeout) return false;
    Close(*c);
    return true;
  });
}

}  // namespace ferry::upstream
