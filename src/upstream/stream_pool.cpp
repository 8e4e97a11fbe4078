#include "upstream/stream_pool.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "config/config.hpp"
#include "runtime/connect.hpp"
#include "tls/client_context.hpp"
#include "tls/tls_stream.hpp"

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

void StreamPool::Lease::Share(std::shared_ptr<Multiplexer> session) {
  pool_->Share(connection_, std::move(session));
}

std::shared_ptr<StreamPool> StreamPool::Create(asio::io_context& io, std::string ip,
                                               std::uint16_t port, PoolSettings settings,
                                               std::string host) {
  return std::shared_ptr<StreamPool>(
      new StreamPool(io, std::move(ip), port, std::move(settings), std::move(host)));
}

StreamPool::StreamPool(asio::io_context& io, std::string ip, std::uint16_t port,
                       PoolSettings settings, std::string host)
    : io_(io),
      ip_(std::move(ip)),
      port_(port),
      host_(host.empty() ? ip_ : std::move(host)),
      settings_(std::move(settings)),
      connected_(io, std::chrono::steady_clock::time_point::max()) {}

bool StreamPool::SameTls(const PooledConnection& connection) const {
  if (settings_.tls == nullptr) return connection.tls == nullptr;
  return connection.tls == settings_.tls.get() &&
         connection.tls_generation == settings_.tls->generation();
}

StreamPool::~StreamPool() {
  for (const auto& c : available_) c->stream->Close();
}

std::size_t StreamPool::idle() const {
  return static_cast<std::size_t>(std::count_if(available_.begin(), available_.end(),
                                                [](const auto& c) { return c->active == 0; }));
}

bool StreamPool::HasRoom(const PooledConnection& c) {
  if (c.closing) return false;
  if (c.session == nullptr) return c.active < c.capacity;
  return c.session->accepting() && c.active < c.session->capacity();
}

void StreamPool::Share(const std::shared_ptr<PooledConnection>& connection,
                       std::shared_ptr<Multiplexer> session) {
  connection->session = std::move(session);
  connection->capacity = std::max<std::uint32_t>(connection->session->capacity(), 1);
  const bool listed =
      std::find(available_.begin(), available_.end(), connection) != available_.end();
  if (!listed && HasRoom(*connection)) available_.push_back(connection);
}

std::shared_ptr<PooledConnection> StreamPool::TakeAvailable(bool replayable) {
  const auto now = std::chrono::steady_clock::now();
  while (!available_.empty()) {
    std::shared_ptr<PooledConnection> c = available_.back();
    if (c->session != nullptr) {
      // Shared (HTTP/2): its session says whether it takes one more; a connection that takes
      // none leaves the list (closed now if idle, else when its last lease ends).
      if (!HasRoom(*c) || !SameTls(*c) ||
          (c->active == 0 && now - c->idle_since >= settings_.idle_timeout)) {
        available_.pop_back();
        c->closing = c->closing || !c->session->accepting() || !SameTls(*c) || c->active == 0;
        if (c->active == 0) Close(*c);
        continue;
      }
      if (c->active + 1 >= c->session->capacity()) available_.pop_back();
      return c;
    }
    if (c->active > 0) {
      // Shared (HTTP/2): it stays available while it has room after this lease.
      if (c->active + 1 >= c->capacity) available_.pop_back();
      return c;
    }
    available_.pop_back();
    if (!SameTls(*c)) {
      Close(*c);
      continue;
    }
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
    for (;;) {
      if (std::shared_ptr<PooledConnection> c = TakeAvailable()) {
        ++c->active;
        co_return Lease(std::move(self), std::move(c));
      }
      // A shared connection being made will likely have room: wait for it (bounded by its
      // connect timeout) instead of making one more per concurrent request.
      if (!settings_.multiplexed || connecting_ == 0) break;
      co_await connected_.async_wait(kNoThrow);
    }
  }
  if (open_ >= settings_.max_connections) {
    co_return Fail(ErrorCode::kResourceExhausted,
                   fmt::format("connection limit ({}) reached for {}", settings_.max_connections,
                               config::Address{ip_, port_}.ToString()));
  }
  ++open_;  // counts against the limit while connecting
  ++connecting_;
  const Duration timeout = std::min(settings_.connect_timeout, connect_within);
  const auto started = std::chrono::steady_clock::now();
  auto stream = co_await runtime::Connect(io_, ip_, port_, timeout, watch);
  // The TLS handshake, with what is left of the connect timeout. The holder and its context
  // are taken now: a swap while this connection is made applies to the next one.
  std::shared_ptr<tls::ClientTls> tls = settings_.tls;
  std::uint64_t tls_generation = 0;
  if (stream && tls != nullptr) {
    std::shared_ptr<const tls::ClientContext> context = tls->Current();
    tls_generation = tls->generation();
    const Duration spent = std::chrono::steady_clock::now() - started;
    const Duration left = std::max<Duration>(timeout - spent, std::chrono::milliseconds(1));
    const std::string where = config::Address{ip_, port_}.ToString();
    stream = co_await context->Handshake(std::move(*stream), host_, where, left);
    // Each refused server is logged with the reason (a misconfiguration or an impostor:
    // someone must look), as the client's 502 says too.
    if (!stream && stream.error().code() == ErrorCode::kTlsFailed) {
      spdlog::warn("upstream {}: {}", host_, stream.error().message());
    }
  }
  --connecting_;
  connected_.cancel();  // the waiters look again (after this lease was made shared)
  if (!stream) {
    --open_;
    co_return tl::unexpected(stream.error());
  }
  ++connects_;
  auto c = std::make_shared<PooledConnection>();
  c->stream = std::move(*stream);
  c->tls = tls.get();
  c->tls_generation = tls_generation;
  if (tls != nullptr) c->alpn = tls::NegotiatedAlpn(*c->stream);
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
  c->tls = settings_.tls.get();  // the caller made it with the current settings
  c->tls_generation = settings_.tls ? settings_.tls->generation() : 0;
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
  // A shared connection whose session takes no new exchange closes with its last lease.
  if (c.session != nullptr && !c.session->accepting()) c.closing = true;
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
