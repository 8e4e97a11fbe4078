// The transport seam: one byte-stream type for every server and client. TcpStream is the real
// one (the only code that names tcp::socket, with Acceptor); MemoryStream::Pair gives two
// connected ends in memory for tests; a TLS stream plugs in beside them.
//
// Stream is an Asio async stream (async_read_some, async_write_some, so asio::async_write and
// asio::async_read work on it) with any completion token (kNoThrow in Ferry). A TcpStream's
// operations go straight to its socket with the caller's handler: one predictable branch, no
// virtual call and no allocation (stream_test checks a warm stream allocates nothing, as a bare
// socket does). Other streams take one virtual call with a type-erased handler
// (asio::any_completion_handler): Asio 1.81 allocates about three small blocks per operation
// there (the handler's executor is converted to any_completion_executor), fine for tests; a
// TLS stream on the hot path should get a direct branch like TCP's. Per-operation cancellation
// slots are honoured either way (a TaskGroup's CancelAll reaches the read a task waits on).
// Thread safety: one stream belongs to one coroutine on one event loop; not shared.
#pragma once

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "runtime/asio.hpp"

namespace ferry::runtime {

// The other end of a connection, as far as it is known ("" and 0 if not).
struct Peer {
  std::string ip;  // "10.0.0.7", "::1"
  std::uint16_t port = 0;
  std::string address;   // "10.0.0.7:5123", "[::1]:5123": the access log's client
  std::string identity;  // the SPIFFE ID of a verified mesh client certificate ("" if none)
};

class Stream {
 public:
  using executor_type = asio::any_io_executor;
  using IoHandler = asio::any_completion_handler<void(error_code, std::size_t)>;
  using WaitHandler = asio::any_completion_handler<void(error_code)>;

  // A gather list for one write_some: up to kMaxBuffers buffers (a longer sequence is written
  // by the next call, as asio::async_write does anyway).
  static constexpr std::size_t kMaxBuffers = 16;
  struct ConstBuffers {
    std::array<asio::const_buffer, kMaxBuffers> items{};
    std::size_t count = 0;
    const asio::const_buffer* begin() const { return items.data(); }
    const asio::const_buffer* end() const { return items.data() + count; }
  };

  explicit Stream(executor_type executor) : executor_(std::move(executor)) {}
  virtual ~Stream() = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  executor_type get_executor() const { return executor_; }
  const Peer& peer() const { return peer_; }

  // Reads some bytes into the first non-empty buffer: (error, bytes). EOF is asio::error::eof.
  template <typename MutableBuffers, typename Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    if (tcp_ != nullptr) return tcp_->async_read_some(buffers, std::forward<Token>(token));
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [](auto handler, Stream* self, asio::mutable_buffer b) {
          self->StartRead(b, IoHandler(std::move(handler)));
        },
        token, this, FirstBuffer(buffers));
  }
  // Writes some of the bytes (gathered from up to kMaxBuffers buffers): (error, bytes).
  template <typename ConstBufferSequence, typename Token>
  auto async_write_some(const ConstBufferSequence& buffers, Token&& token) {
    if (tcp_ != nullptr) return tcp_->async_write_some(buffers, std::forward<Token>(token));
    return asio::async_initiate<Token, void(error_code, std::size_t)>(
        [](auto handler, Stream* self, const ConstBuffers& b) {
          self->StartWrite(b, IoHandler(std::move(handler)));
        },
        token, this, Gather(buffers));
  }
  // Waits until bytes (or EOF, or an error) can be read, without reading them: an idle
  // connection waits like this and holds no buffer.
  template <typename Token>
  auto async_wait_readable(Token&& token) {
    if (tcp_ != nullptr) {
      return tcp_->async_wait(tcp::socket::wait_read, std::forward<Token>(token));
    }
    return asio::async_initiate<Token, void(error_code)>(
        [](auto handler, Stream* self) {
          self->StartWaitReadable(WaitHandler(std::move(handler)));
        },
        token, this);
  }

  // Ends the pending operations with operation_aborted; the stream stays usable. (Named as
  // Asio's sockets name it, so runtime::Deadline works on a Stream.)
  virtual void cancel(error_code& ec) = 0;
  // Sends EOF to the peer once written bytes are out; reading goes on.
  virtual void ShutdownSend() = 0;
  // Closes both directions; pending operations end with operation_aborted.
  virtual void Close() = 0;
  // True if the peer closed or reset its side (checked without reading any byte): a long-poll
  // asks before leasing a message to a client that may have gone.
  virtual bool PeerGone() = 0;

 protected:
  virtual void StartRead(asio::mutable_buffer buffer, IoHandler handler) = 0;
  virtual void StartWrite(const ConstBuffers& buffers, IoHandler handler) = 0;
  virtual void StartWaitReadable(WaitHandler handler) = 0;

  Peer peer_;
  // Set by TcpStream: its operations go straight to the socket with the caller's handler (see
  // the header comment); the virtual Start* calls serve the other streams.
  tcp::socket* tcp_ = nullptr;

 private:
  template <typename MutableBuffers>
  static asio::mutable_buffer FirstBuffer(const MutableBuffers& buffers) {
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      asio::mutable_buffer b(*it);
      if (b.size() > 0) return b;
    }
    return {};
  }
  template <typename ConstBufferSequence>
  static ConstBuffers Gather(const ConstBufferSequence& buffers) {
    ConstBuffers out;
    for (auto it = asio::buffer_sequence_begin(buffers);
         it != asio::buffer_sequence_end(buffers) && out.count < kMaxBuffers; ++it) {
      asio::const_buffer b(*it);
      if (b.size() > 0) out.items[out.count++] = b;
    }
    return out;
  }

  executor_type executor_;
};

// A TCP connection. Sets TCP_NODELAY and records the peer's address when made.
class TcpStream final : public Stream {
 public:
  explicit TcpStream(tcp::socket socket);
  ~TcpStream() override;

  void cancel(error_code& ec) override { socket_.cancel(ec); }
  void ShutdownSend() override;
  void Close() override;
  bool PeerGone() override;
  // For the runtime's own use (connecting, socket options); no other area names it.
  tcp::socket& socket() { return socket_; }

 protected:
  void StartRead(asio::mutable_buffer buffer, IoHandler handler) override;
  void StartWrite(const ConstBuffers& buffers, IoHandler handler) override;
  void StartWaitReadable(WaitHandler handler) override;

 private:
  tcp::socket socket_;
};

// An in-memory connection for tests: Pair() makes two ends; what one writes the other reads.
// Writes never block (the bytes are queued); ShutdownSend and Close give the peer EOF, and
// writing to an end whose peer closed fails with broken_pipe.
class MemoryStream final : public Stream {
 public:
  struct Channel;  // one direction's bytes and state (memory_stream.cpp)
  static std::pair<std::unique_ptr<MemoryStream>, std::unique_ptr<MemoryStream>> Pair(
      executor_type executor);
  MemoryStream(executor_type executor, std::shared_ptr<Channel> in, std::shared_ptr<Channel> out);
  ~MemoryStream() override;

  void cancel(error_code& ec) override;
  void ShutdownSend() override;
  void Close() override;
  bool PeerGone() override;
  // Sets what peer() reports (tests of code that logs or hashes the client address).
  void SetPeer(Peer peer) { peer_ = std::move(peer); }

  // Called by the channel when bytes or EOF arrive for this end.
  void Wake();

 protected:
  void StartRead(asio::mutable_buffer buffer, IoHandler handler) override;
  void StartWrite(const ConstBuffers& buffers, IoHandler handler) override;
  void StartWaitReadable(WaitHandler handler) override;

 private:
  void CancelRead(bool from_slot = false);
  void CancelWait(bool from_slot = false);
  std::shared_ptr<Channel> in_;
  std::shared_ptr<Channel> out_;
  asio::mutable_buffer read_buffer_;
  std::optional<IoHandler> read_;    // the pending read, if any
  std::optional<WaitHandler> wait_;  // the pending readiness wait, if any
  bool closed_ = false;
};

}  // namespace ferry::runtime
