// TlsStream: TLS over another runtime::Stream (normally a TcpStream), with OpenSSL driven
// through a BIO of our own over the stream's buffers: OpenSSL never touches the socket, so the
// lower stream's cancellation, deadlines and MemoryStream tests work unchanged.
//
// Made only by a handshake: ServerHandshake (here over a raw SSL_CTX; server_context.hpp has
// the listener's form) or ClientHandshake. Both run under a timeout and return the stream ready
// for application bytes, or an error (kDeadlineExceeded on timeout, kConnectionClosed when the
// peer closed, kConnectFailed for a TLS failure: protocol version, verification, alert; the
// message carries OpenSSL's reason). peer() is the lower stream's peer plus `identity`: the
// SPIFFE ID (URI SAN spiffe://...) of a peer certificate the handshake verified.
//
// Operations follow stream.hpp: one read (or readiness wait) and one write may be pending at
// once; their cancellation slots reach the lower stream's operation; cancel() cancels the lower
// stream; ShutdownSend sends close_notify then shuts the lower stream's send side (reading goes
// on); Close closes the lower stream without close_notify. A write encrypts up to 64 KiB of its
// buffers (small gathered buffers go into one record) and completes once those records are
// written to the lower stream.
// Thread safety: like every Stream, one owner on one event loop.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "core/units.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"

struct ssl_st;
struct ssl_ctx_st;

namespace ferry::tls {

class TlsStream final : public runtime::Stream {
 public:
  struct Impl;  // tls_stream.cpp; shared with the lower stream's pending handlers
  explicit TlsStream(std::shared_ptr<Impl> impl);
  ~TlsStream() override;

  void cancel(error_code& ec) override;
  void ShutdownSend() override;
  void Close() override;
  bool PeerGone() override;

  // The OpenSSL connection (negotiated version, ALPN, peer certificate), for inspection only.
  ssl_st* native_handle() const;

 protected:
  void StartRead(asio::mutable_buffer buffer, IoHandler handler) override;
  void StartWrite(const ConstBuffers& buffers, IoHandler handler) override;
  void StartWaitReadable(WaitHandler handler) override;

 private:
  std::shared_ptr<Impl> impl_;
};

// The protocol ALPN settled on for `stream` ("h2", "http/1.1"), or "" when it is no TlsStream
// or the peer chose none.
std::string NegotiatedAlpn(runtime::Stream& stream);

// Called after a handshake's certificate checks passed, before the stream is handed out: an
// error refuses the connection (a client pins a key or checks the server's SPIFFE ID here).
using VerifyHook = std::function<Result<void>(ssl_st*)>;

// A server handshake with an SSL_CTX of the caller's (which must outlive the handshake; the
// connection keeps its own reference to it afterwards).
Task<Result<std::unique_ptr<runtime::Stream>>> ServerHandshake(
    std::unique_ptr<runtime::Stream> lower, ssl_ctx_st* ctx, Duration timeout);

// A client handshake: `server_name` is sent as SNI when not empty (the caller sets up name
// verification in its SSL_CTX or its hook); `verify`, when set, runs after the handshake.
Task<Result<std::unique_ptr<runtime::Stream>>> ClientHandshake(
    std::unique_ptr<runtime::Stream> lower, ssl_ctx_st* ctx, std::string server_name,
    Duration timeout, VerifyHook verify = {});

// The protocol ALPN chose on `stream` ("h2", "http/1.1"), or "" (none, or not a TlsStream).
std::string_view NegotiatedProtocol(const runtime::Stream& stream);

}  // namespace ferry::tls
