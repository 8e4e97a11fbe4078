// Connections to one upstream endpoint, as runtime::Streams, handed out as leases. A connection
// carries up to `capacity` exchanges at once: 1 for HTTP/1.1 (a lease is the connection, alone),
// more for an HTTP/2 connection later (one lease per stream, all on one connection). A
// connection with room left is "available"; available connections are kept LIFO (the warmest
// first), and an idle one (no lease) holds no buffer and no pending operation: it is checked for
// a close or stray bytes when taken (runtime::IdleConnectionUsable), and closed by Sweep() past
// the idle timeout.
// Ownership: the pool is shared (Create): a lease keeps it alive, so an endpoint dropped by a
// re-resolution can finish the exchanges it carries. Leases own their slot, not the stream.
// Thread safety: one pool per event loop per endpoint, used only on that loop's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "runtime/asio.hpp"
#include "runtime/io_watch.hpp"
#include "runtime/stream.hpp"
#include "upstream/pool_settings.hpp"

namespace ferry::upstream {

// A protocol session that carries many exchanges at once on one pooled connection (HTTP/2:
// http2_connection.hpp). The pool asks it whether the connection still takes new exchanges and
// how many at once; the session reads and writes the connection itself (its own tasks), so the
// pool never checks such a connection by reading it.
class Multiplexer {
 public:
  virtual ~Multiplexer() = default;
  // False once it takes no new exchange (a GOAWAY came, the connection failed or closed).
  virtual bool accepting() const = 0;
  // Exchanges it carries at once now (the peer's limit can change).
  virtual std::uint32_t capacity() const = 0;
};

// One open connection of a pool.
struct PooledConnection {
  std::unique_ptr<runtime::Stream> stream;
  std::uint32_t capacity = 1;  // exchanges it can carry at once (HTTP/1.1: 1)
  std::uint32_t active = 0;    // leases on it now
  std::uint64_t finished = 0;  // exchanges it finished cleanly (> 0: it is a reused one)
  bool closing = false;        // no new leases; closed when the last one ends
  std::string scratch;         // an HTTP/1.1 exchange's request head (kept: its storage is reused)
  std::chrono::steady_clock::time_point idle_since{};
  // The TLS it was made with (PoolSettings::tls and its generation then): a connection whose
  // TLS settings were replaced since is not reused.
  const tls::ClientTls* tls = nullptr;
  std::uint64_t tls_generation = 0;
  // The TLS handshake's ALPN answer ("h2", "http/1.1"; "" for none or plain TCP).
  std::string alpn;
  // The session sharing the connection (HTTP/2); null: one exchange at a time (HTTP/1.1).
  std::shared_ptr<Multiplexer> session;
};

class StreamPool : public std::enable_shared_from_this<StreamPool> {
 public:
  // The right to run one exchange on one connection. Release() gives it back; a lease destroyed
  // without Release() counts as Release(false) (the exchange did not end cleanly).
  class Lease {
   public:
    Lease() = default;
    Lease(std::shared_ptr<StreamPool> pool, std::shared_ptr<PooledConnection> connection);
    Lease(Lease&& other) noexcept = default;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();

    explicit operator bool() const { return connection_ != nullptr; }
    runtime::Stream& stream() const { return *connection_->stream; }
    // The connection finished an exchange before this one, so the peer may have closed it while
    // it sat idle (the keep-alive race): a failure before any response byte may be retried.
    bool reused() const { return reused_; }
    // A string of the connection's own, for the exchange's request head (HTTP/1.1: one lease at a
    // time, so it is the lease's alone), so a request head costs no allocation once it has grown.
    std::string& scratch() const { return connection_->scratch; }
    // Ends the exchange: `reusable` if it ended cleanly and the connection may carry another;
    // false closes the connection (once no other lease uses it).
    void Release(bool reusable);
    // The connection's multiplexing session, if one was set (an HTTP/2 connection), and the
    // TLS handshake's ALPN answer.
    Multiplexer* session() const { return connection_->session.get(); }
    const std::string& alpn() const { return connection_->alpn; }
    // Makes the connection (a fresh one, this its only lease) a shared one: `session` carries
    // up to session->capacity() exchanges at once, so the pool hands out more leases on it.
    void Share(std::shared_ptr<Multiplexer> session);
    // What keeps the connection's stream alive: the session's own tasks hold it until the
    // stream is closed.
    std::shared_ptr<void> KeepAlive() const { return connection_; }

   private:
    std::shared_ptr<StreamPool> pool_;
    std::shared_ptr<PooledConnection> connection_;
    bool reused_ = false;
  };

  // `host`: the endpoint's configured host (a DNS name, or the IP), for TLS; "" = ip.
  static std::shared_ptr<StreamPool> Create(asio::io_context& io, std::string ip,
                                            std::uint16_t port, PoolSettings settings,
                                            std::string host = "");
  ~StreamPool();
  StreamPool(const StreamPool&) = delete;
  StreamPool& operator=(const StreamPool&) = delete;

  // A lease on an available connection that still looks usable, or on a new one; with
  // fresh_only always a new one (the retry after the keep-alive race). The connect takes at most
  // min(connect_timeout, `connect_within`). Errors: kResourceExhausted at max_connections,
  // kConnectFailed (refused, unreachable, timed out: the TLS handshake included), kTlsFailed
  // (the handshake failed or the server is not the one the service's tls: names), kCancelled.
  // `watch` (optional) watches the TCP connect (runtime::Connect), not the TLS handshake.
  Task<Result<Lease>> Acquire(bool fresh_only, Duration connect_within,
                              runtime::IoWatch* watch = nullptr);
  // A lease on an available connection that still looks usable, without suspending; an empty
  // lease if there is none (then Acquire connects). The common case of Acquire, with no frame.
  // `replayable`: the caller can send the request again on a fresh connection if this one
  // turns out closed (the keep-alive race retry), so a connection idle for less than
  // kTrustIdleFor is taken without the check (a recv system call per request); longer idle
  // ones are checked still, because an upstream may have said something at its idle timeout
  // (a 408) that must not pass for the answer.
  Lease TryAcquire(bool replayable = false);
  static constexpr Duration kTrustIdleFor = std::chrono::milliseconds(500);
  // Adds a connection made elsewhere, idle, able to carry `capacity` exchanges at once (an
  // HTTP/2 connection once its settings say how many streams; a test's in-memory stream).
  // It counts against max_connections like the pool's own.
  void Adopt(std::unique_ptr<runtime::Stream> stream, std::uint32_t capacity);
  // Closes idle connections older than the idle timeout.
  void Sweep(std::chrono::steady_clock::time_point now);
  void set_settings(const PoolSettings& settings) { settings_ = settings; }

  std::size_t open() const { return open_; }            // connections open (and connecting)
  std::size_t idle() const;                             // open with no lease on them
  std::uint64_t connects() const { return connects_; }  // connections made since creation
  const std::string& ip() const { return ip_; }
  std::uint16_t port() const { return port_; }

 private:
  StreamPool(asio::io_context& io, std::string ip, std::uint16_t port, PoolSettings settings,
             std::string host);
  // False if the connection was made with TLS settings other than the current ones.
  bool SameTls(const PooledConnection& connection) const;
  std::shared_ptr<PooledConnection> TakeAvailable(bool replayable = false);
  // Has room for another lease, and takes one (a shared connection's session decides).
  static bool HasRoom(const PooledConnection& connection);
  void Share(const std::shared_ptr<PooledConnection>& connection,
             std::shared_ptr<Multiplexer> session);
  void Return(const std::shared_ptr<PooledConnection>& connection, bool reusable);
  void Close(PooledConnection& connection);

  asio::io_context& io_;
  std::string ip_;
  std::uint16_t port_;
  std::string host_;
  PoolSettings settings_;
  // Connections with room for another lease, the most recently returned last.
  std::vector<std::shared_ptr<PooledConnection>> available_;
  std::size_t open_ = 0;
  std::uint64_t connects_ = 0;
  // Connections being made, and what their end (made or failed) wakes: the Acquires that wait
  // for a shared connection (settings_.multiplexed) instead of making one more.
  std::size_t connecting_ = 0;
  asio::steady_timer connected_;
};

}  // namespace ferry::upstream
