// The transport seam: one byte-stream type for every server and client. TcpStream is the real
// one (the only code that names tcp::socket, with Acceptor); MemoryStream::Pair gives two
// connected ends in memory for tests; a TLS stream plugs in beside them.
//
// Stream is an Asio async stream (async_read_some, async_write_some, so asio::async_write and
// asio::async_read work on it) with any completion token (kNoThrow in Ferry). A TcpStream's
// operations go straight to its socket with the caller's handler: one predictable branch, no
// virtual call and no allocation (stream_test checks a warm stream allocates nothing, as a bare
// socket does). A stream with a RecordLayer over a TCP socket (TLS) gets a direct branch too:
// its operations are composed operations (asio::async_compose) with the caller's handler that
// call the record layer's non-template functions and the socket's own operations, so they
// allocate nothing either. Other streams (MemoryStream, TLS over one) take one virtual call
// with a type-erased handler (asio::any_completion_handler): Asio 1.81 allocates about three
// small blocks per operation there (the handler's executor is converted to
// any_completion_executor), fine for tests. Per-operation cancellation slots are honoured every
// way (a TaskGroup's CancelAll reaches the read a task waits on).
// Thread safety: one stream belongs to one coroutine on one event loop; not shared.
#pragma once

#include <array>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "runtime/asio.hpp"

namespace ferry::runtime {

// A gather list for one write_some: up to kMaxBuffers buffers (a longer sequence is written by
// the next call, as asio::async_write does anyway).
struct GatherList {
  static constexpr std::size_t kMaxBuffers = 16;
  std::array<asio::const_buffer, kMaxBuffers> items{};
  std::size_t count = 0;
  const asio::const_buffer* begin() const { return items.data(); }
  const asio::const_buffer* end() const { return items.data() + count; }
};

// The byte transformation of a stream over a TCP socket (TLS: src/tls/tls_stream.cpp), as
// non-template calls: the stream's composed operations below do the socket I/O. Ciphertext to
// send is taken by StartSending and handed back by Sent; one sending at a time (Sending()).
class RecordLayer {
 public:
  struct Step {
    error_code ec;
    std::size_t bytes = 0;    // plaintext read into the buffer, or taken from the gather list
    bool need_input = false;  // read ciphertext into InputSpace(), report it with Filled(n)
  };
  virtual Step Decrypt(asio::mutable_buffer out) = 0;
  virtual Step Encrypt(const GatherList& in) = 0;
  virtual asio::mutable_buffer InputSpace() = 0;
  virtual void Filled(std::size_t n) = 0;
  // Ciphertext waiting to be sent, now owned by the caller's write (empty: none, or a write is
  // already sending).
  virtual asio::const_buffer StartSending() = 0;
  virtual void Sent(error_code ec) = 0;
  virtual bool Sending() const = 0;
  // Plaintext or ciphertext already read and not yet handed out (a read would not wait).
  virtual bool HasBuffered() const = 0;

  virtual ~RecordLayer() = default;

  tcp::socket* socket = nullptr;  // the lower TcpStream's
};

namespace detail {

// Posts a completion of an operation that finished without waiting (Asio's rule: never inline
// from the initiating function).
template <typename Self>
void PostCompletion(Self& self, tcp::socket& socket, error_code ec, std::size_t n) {
  auto ex = socket.get_executor();
  asio::post(ex, asio::append(std::move(self), ec, n));
}

// async_read_some over a RecordLayer: decrypt; when it needs ciphertext, read the socket.
// Records the decryption made (a key update's answer) are sent before the read completes.
struct RecordReadOp {
  std::shared_ptr<RecordLayer> r;
  asio::mutable_buffer out;
  enum { kStart, kReading, kFlushing, kPosted } state = kStart;
  RecordLayer::Step result{};
  asio::const_buffer flush{};

  template <typename Self>
  void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
    switch (state) {
      case kStart:
        return Step(self, /*waited=*/false);
      case kReading:
        if (ec) return self.complete(ec, std::size_t{0});
        r->Filled(n);
        return Step(self, /*waited=*/true);
      case kFlushing:
        flush += n;
        if (!ec && flush.size() > 0) return r->socket->async_write_some(flush, std::move(self));
        r->Sent(ec);
        return Finish(self, /*waited=*/true);
      case kPosted:
        return self.complete(ec, n);
    }
  }
  template <typename Self>
  void Step(Self& self, bool waited) {
    result = r->Decrypt(out);
    if (!r->Sending()) {
      flush = r->StartSending();
      if (flush.size() > 0) {
        state = kFlushing;
        return r->socket->async_write_some(flush, std::move(self));
      }
    }
    Finish(self, waited);
  }
  template <typename Self>
  void Finish(Self& self, bool waited) {
    if (result.need_input) {
      state = kReading;
      return r->socket->async_read_some(r->InputSpace(), std::move(self));
    }
    if (waited) return self.complete(result.ec, result.bytes);
    state = kPosted;
    PostCompletion(self, *r->socket, result.ec, result.bytes);
  }
};

// async_write_some over a RecordLayer: encrypt up to a bound, then send every record made.
struct RecordWriteOp {
  std::shared_ptr<RecordLayer> r;
  GatherList in;
  enum { kStart, kWaitTurn, kSending, kPosted } state = kStart;
  std::size_t taken = 0;
  asio::const_buffer out{};

  template <typename Self>
  void operator()(Self& self, error_code ec = {}, std::size_t n = 0) {
    switch (state) {
      case kStart: {
        const RecordLayer::Step s = r->Encrypt(in);
        if (s.ec || s.bytes == 0) {
          state = kPosted;
          return PostCompletion(self, *r->socket, s.ec, std::size_t{0});
        }
        taken = s.bytes;
        return Send(self);
      }
      case kWaitTurn:
        return Send(self);
      case kSending:
        out += n;
        if (!ec && out.size() > 0) return r->socket->async_write_some(out, std::move(self));
        r->Sent(ec);
        if (ec) return self.complete(ec, std::size_t{0});
        return Send(self);  // records a read made meanwhile
      case kPosted:
        return self.complete(ec, n);
    }
  }
  template <typename Self>
  void Send(Self& self) {
    if (r->Sending()) {  // a read is sending its records (rare: a key update): wait for it
      state = kWaitTurn;
      auto ex = r->socket->get_executor();
      return asio::post(ex, std::move(self));
    }
    out = r->StartSending();
    if (out.size() == 0) {
      if (state == kStart) {
        state = kPosted;
        return PostCompletion(self, *r->socket, error_code(), taken);
      }
      return self.complete(error_code(), taken);
    }
    state = kSending;
    r->socket->async_write_some(out, std::move(self));
  }
};

}  // namespace detail

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

  static constexpr std::size_t kMaxBuffers = GatherList::kMaxBuffers;
  using ConstBuffers = GatherList;

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
    if (records_ != nullptr) {
      return asio::async_compose<Token, void(error_code, std::size_t)>(
          detail::RecordReadOp{records_, FirstBuffer(buffers)}, token, *records_->socket);
    }
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
    if (records_ != nullptr) {
      return asio::async_compose<Token, void(error_code, std::size_t)>(
          detail::RecordWriteOp{records_, Gather(buffers)}, token, *records_->socket);
    }
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
    if (records_ != nullptr) {
      return asio::async_initiate<Token, void(error_code)>(
          [](auto handler, RecordLayer* r) {
            if (!r->HasBuffered()) {
              return r->socket->async_wait(tcp::socket::wait_read, std::move(handler));
            }
            auto ex = r->socket->get_executor();
            asio::post(ex, asio::append(std::move(handler), error_code()));
          },
          token, records_.get());
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
  // Set by a stream with a record layer over a TCP socket (TLS over a TcpStream): its
  // operations are the composed operations above; the virtual Start* calls are not used.
  std::shared_ptr<RecordLayer> records_;
  // The TCP socket of `lower` if it is a TcpStream (for a stream that layers over it).
  static tcp::socket* TcpSocketOf(Stream& lower) { return lower.tcp_; }

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
