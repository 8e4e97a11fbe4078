#include "tls/tls_stream.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <boost/asio/append.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/dispatch.hpp>
#include <cstring>
#include <optional>

#include "mesh/spiffe.hpp"
#include "runtime/deadline.hpp"

namespace ferry::tls {

namespace {

// Bytes read from the lower stream at once: one full TLS record and its header.
constexpr std::size_t kInputBytes = 17 * 1024;
// Plaintext one write encrypts at most (asio::async_write calls again for the rest).
constexpr std::size_t kMaxWriteBytes = 64 * 1024;
// Gathered buffers up to this size are copied into one record instead of one record each.
constexpr std::size_t kCoalesceBytes = 16 * 1024;

// Completes an operation from its initiating function: never inline (Asio's rule), so posted.
template <typename Handler, typename... Args>
void Complete(const asio::any_io_executor& ex, Handler handler, Args... args) {
  asio::post(ex, asio::append(std::move(handler), args...));
}

// Completes an operation from a lower stream's completion handler, i.e. on the handler's own
// event loop: inline (one trip through the loop's queue fewer on every read and write). The
// caller has taken the handler out of its slot first: the resumed coroutine may start the next
// operation at once.
template <typename Handler, typename... Args>
void CompleteNow(Handler handler, Args... args) {
  asio::dispatch(asio::append(std::move(handler), args...));
}

// OpenSSL's reason for the last failure on this thread, cleared after.
std::string SslReason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    if (!out.empty()) out.append("; ");
    out.append(buf);
  }
  return out.empty() ? std::string("TLS failure") : out;
}

error_code SslErrorCode() {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return asio::error::eof;  // the peer vanished without close_notify
  // A TLS protocol failure (bad record, alert from the peer): the stream is unusable.
  return make_error_code(boost::system::errc::protocol_error);
}

}  // namespace

struct TlsStream::Impl : std::enable_shared_from_this<Impl>, runtime::RecordLayer {
  explicit Impl(std::unique_ptr<runtime::Stream> l)
      : lower(std::move(l)), ex(lower->get_executor()), input(new char[kInputBytes]) {}
  ~Impl() {
    if (ssl != nullptr) SSL_free(ssl);
  }

  std::unique_ptr<runtime::Stream> lower;
  asio::any_io_executor ex;
  SSL* ssl = nullptr;
  // Ciphertext read from the lower stream; OpenSSL takes it through the BIO.
  std::unique_ptr<char[]> input;
  std::size_t input_begin = 0;
  std::size_t input_end = 0;
  // Ciphertext OpenSSL wrote through the BIO, not yet handed to the lower stream; `sending` is
  // what the lower stream's write in flight holds (never touched until it completes).
  std::string pending;
  std::string sending;
  std::string coalesce;  // scratch for gathered small buffers
  bool writing = false;
  bool shutdown_requested = false;  // ShutdownSend: close_notify, then the lower stream's
  bool lower_shut = false;
  bool closed = false;
  error_code write_error;  // a failed lower write: the stream cannot write any more

  asio::mutable_buffer read_buffer;
  std::optional<IoHandler> read_op;
  std::optional<IoHandler> write_op;
  std::size_t write_bytes = 0;  // plaintext the pending write op took

  // `initiating`: called from StartRead (completions must be posted), not from a handler.
  void ContinueRead(bool initiating);
  void ReadLower();
  void FinishRead(error_code ec, std::size_t n, bool initiating);
  void FinishWrite(error_code ec, std::size_t n);
  void PumpWrite();
  void OnLowerWrite(error_code ec);

  // runtime::RecordLayer: the direct path of a TLS stream over a TcpStream.
  Step Decrypt(asio::mutable_buffer out) override;
  Step Encrypt(const runtime::GatherList& in) override;
  asio::mutable_buffer InputSpace() override {
    input_begin = input_end = 0;
    return asio::buffer(input.get(), kInputBytes);
  }
  void Filled(std::size_t n) override { input_end = n; }
  asio::const_buffer StartSending() override;
  void Sent(error_code ec) override;
  bool Sending() const override { return writing; }
  bool HasBuffered() const override { return input_begin < input_end || SSL_has_pending(ssl) == 1; }
};

namespace {

// The BIO between OpenSSL and Impl: reads take the lower stream's bytes from Impl::input,
// writes append to Impl::pending. Nothing blocks: an empty input is a retryable read.
int BioWrite(BIO* bio, const char* data, std::size_t n, std::size_t* written) {
  auto* impl = static_cast<TlsStream::Impl*>(BIO_get_data(bio));
  impl->pending.append(data, n);
  *written = n;
  return 1;
}

int BioRead(BIO* bio, char* out, std::size_t n, std::size_t* read) {
  BIO_clear_retry_flags(bio);
  auto* impl = static_cast<TlsStream::Impl*>(BIO_get_data(bio));
  const std::size_t available = impl->input_end - impl->input_begin;
  if (available == 0) {
    BIO_set_retry_read(bio);
    *read = 0;
    return 0;
  }
  const std::size_t k = std::min(n, available);
  std::memcpy(out, impl->input.get() + impl->input_begin, k);
  impl->input_begin += k;
  *read = k;
  return 1;
}

long BioCtrl(BIO* bio, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;
    case BIO_CTRL_PENDING: {
      auto* impl = static_cast<TlsStream::Impl*>(BIO_get_data(bio));
      return static_cast<long>(impl->input_end - impl->input_begin);
    }
    default:
      return 0;
  }
}

int BioCreate(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* StreamBioMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ferry stream");
    BIO_meth_set_write_ex(m, BioWrite);
    BIO_meth_set_read_ex(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

}  // namespace

void TlsStream::Impl::ContinueRead(bool initiating) {
  std::size_t n = 0;
  // No ERR_clear_error before each call (it cost ~400 instructions, 2% of a TLS request):
  // the outcome is told from the connection's own state, which stale errors on the thread's
  // queue cannot disturb as they can SSL_get_error.
  const int r = SSL_read_ex(ssl, read_buffer.data(), read_buffer.size(), &n);
  // Reading may make records to send (TLS 1.3 key update answers, alerts).
  if (!pending.empty()) PumpWrite();
  if (r == 1) return FinishRead({}, n, initiating);
  if (SSL_want_read(ssl)) return ReadLower();
  if ((SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0) {
    return FinishRead(asio::error::eof, 0, initiating);  // close_notify
  }
  return FinishRead(SslErrorCode(), 0, initiating);
}

void TlsStream::Impl::ReadLower() {
  input_begin = input_end = 0;
  auto slot = read_op->get_cancellation_slot();
  lower->async_read_some(
      asio::buffer(input.get(), kInputBytes),
      asio::bind_cancellation_slot(slot, [self = shared_from_this()](error_code ec, std::size_t n) {
        if (!self->read_op) return;
        if (ec) return self->FinishRead(ec, 0, /*initiating=*/false);
        self->input_end = n;
        self->ContinueRead(/*initiating=*/false);
      }));
}

void TlsStream::Impl::FinishRead(error_code ec, std::size_t n, bool initiating) {
  IoHandler handler = std::move(*read_op);
  read_op.reset();
  if (initiating) return Complete(ex, std::move(handler), ec, n);
  CompleteNow(std::move(handler), ec, n);
}

// Only ever reached from OnLowerWrite: a write op exists only while its records are written.
void TlsStream::Impl::FinishWrite(error_code ec, std::size_t n) {
  IoHandler handler = std::move(*write_op);
  write_op.reset();
  CompleteNow(std::move(handler), ec, n);
}

void TlsStream::Impl::PumpWrite() {
  if (writing) return;
  if (pending.empty()) {
    if (shutdown_requested && !lower_shut && !closed) {
      lower_shut = true;
      lower->ShutdownSend();
    }
    if (write_op) FinishWrite(error_code(), write_bytes);
    return;
  }
  std::swap(pending, sending);
  writing = true;
  asio::cancellation_slot slot;
  if (write_op) slot = write_op->get_cancellation_slot();
  asio::async_write(
      *lower, asio::buffer(sending),
      asio::bind_cancellation_slot(slot, [self = shared_from_this()](error_code ec, std::size_t) {
        self->OnLowerWrite(ec);
      }));
}

void TlsStream::Impl::OnLowerWrite(error_code ec) {
  writing = false;
  sending.clear();
  if (ec) {
    write_error = ec;
    pending.clear();
    if (write_op) FinishWrite(ec, 0);
    return;
  }
  PumpWrite();
}

runtime::RecordLayer::Step TlsStream::Impl::Decrypt(asio::mutable_buffer out) {
  if (closed) return {asio::error::bad_descriptor};
  if (out.size() == 0) return {};
  std::size_t n = 0;
  // No ERR_clear_error first: see ContinueRead.
  if (SSL_read_ex(ssl, out.data(), out.size(), &n) == 1) return {{}, n};
  if (SSL_want_read(ssl)) return {{}, 0, /*need_input=*/true};
  if ((SSL_get_shutdown(ssl) & SSL_RECEIVED_SHUTDOWN) != 0) return {asio::error::eof};
  return {SslErrorCode()};
}

runtime::RecordLayer::Step TlsStream::Impl::Encrypt(const runtime::GatherList& buffers) {
  if (closed || lower_shut || shutdown_requested) {
    return {closed ? asio::error::bad_descriptor : asio::error::shut_down};
  }
  if (write_error) return {write_error};
  std::size_t total = 0;
  for (const asio::const_buffer& b : buffers) total += b.size();
  if (total == 0) return {};
  std::size_t taken = 0;  // (a write into our BIO never waits: failure is an error)
  bool ok = true;
  if (buffers.count > 1 && total <= kCoalesceBytes) {
    coalesce.clear();
    for (const asio::const_buffer& b : buffers) {
      coalesce.append(static_cast<const char*>(b.data()), b.size());
    }
    ok = SSL_write_ex(ssl, coalesce.data(), coalesce.size(), &taken) == 1;
  } else {
    for (const asio::const_buffer& b : buffers) {
      const std::size_t want = std::min(b.size(), kMaxWriteBytes - taken);
      std::size_t wrote = 0;
      ok = SSL_write_ex(ssl, b.data(), want, &wrote) == 1;
      taken += wrote;
      if (!ok || taken >= kMaxWriteBytes) break;
    }
  }
  if (!ok && taken == 0) return {SslErrorCode()};
  return {{}, taken};
}

asio::const_buffer TlsStream::Impl::StartSending() {
  if (writing || pending.empty()) return {};
  std::swap(pending, sending);
  writing = true;
  return asio::buffer(sending);
}

void TlsStream::Impl::Sent(error_code ec) {
  writing = false;
  sending.clear();
  if (ec) {
    write_error = ec;
    pending.clear();
    return;
  }
  // A ShutdownSend that came while these records were being sent.
  if (pending.empty() && shutdown_requested && !lower_shut && !closed) {
    lower_shut = true;
    lower->ShutdownSend();
  } else if (!pending.empty() && shutdown_requested) {
    PumpWrite();
  }
}

TlsStream::TlsStream(std::shared_ptr<Impl> impl) : Stream(impl->ex), impl_(std::move(impl)) {
  if (tcp::socket* socket = TcpSocketOf(*impl_->lower)) {
    impl_->socket = socket;
    records_ = impl_;
  }
  peer_ = impl_->lower->peer();
  if (X509* cert = SSL_get0_peer_certificate(impl_->ssl);
      cert != nullptr && SSL_get_verify_result(impl_->ssl) == X509_V_OK) {
    peer_.identity = mesh::SpiffeIdOf(cert);
  }
}

TlsStream::~TlsStream() { Close(); }

ssl_st* TlsStream::native_handle() const { return impl_->ssl; }

void TlsStream::StartRead(asio::mutable_buffer buffer, IoHandler handler) {
  Impl& s = *impl_;
  if (s.closed) {
    return Complete(s.ex, std::move(handler), error_code(asio::error::bad_descriptor),
                    std::size_t{0});
  }
  if (buffer.size() == 0) return Complete(s.ex, std::move(handler), error_code(), std::size_t{0});
  s.read_buffer = buffer;
  s.read_op.emplace(std::move(handler));
  s.ContinueRead(/*initiating=*/true);
}

void TlsStream::StartWrite(const ConstBuffers& buffers, IoHandler handler) {
  Impl& s = *impl_;
  const runtime::RecordLayer::Step step = s.Encrypt(buffers);
  if (step.ec || step.bytes == 0)
    return Complete(s.ex, std::move(handler), step.ec, std::size_t{0});
  s.write_bytes = step.bytes;
  s.write_op.emplace(std::move(handler));
  s.PumpWrite();
}

void TlsStream::StartWaitReadable(WaitHandler handler) {
  Impl& s = *impl_;
  if (s.closed) return Complete(s.ex, std::move(handler), error_code(asio::error::bad_descriptor));
  if (SSL_has_pending(s.ssl) == 1 || s.input_begin < s.input_end) {
    return Complete(s.ex, std::move(handler), error_code());
  }
  s.lower->async_wait_readable(std::move(handler));
}

void TlsStream::cancel(error_code& ec) { impl_->lower->cancel(ec); }

void TlsStream::ShutdownSend() {
  Impl& s = *impl_;
  if (s.closed || s.shutdown_requested) return;
  s.shutdown_requested = true;
  ERR_clear_error();
  SSL_shutdown(s.ssl);  // queues close_notify; the peer's comes (or not) through reads
  ERR_clear_error();
  s.PumpWrite();
}

void TlsStream::Close() {
  Impl& s = *impl_;
  if (s.closed) return;
  s.closed = true;
  s.lower->Close();  // pending operations end with operation_aborted through their handlers
}

bool TlsStream::PeerGone() {
  if (impl_->closed) return true;
  if ((SSL_get_shutdown(impl_->ssl) & SSL_RECEIVED_SHUTDOWN) != 0) return true;
  return impl_->lower->PeerGone();
}

std::string_view NegotiatedProtocol(const runtime::Stream& stream) {
  const auto* tls = dynamic_cast<const TlsStream*>(&stream);
  if (tls == nullptr) return {};
  const unsigned char* name = nullptr;
  unsigned int length = 0;
  SSL_get0_alpn_selected(tls->native_handle(), &name, &length);
  if (name == nullptr) return {};
  return {reinterpret_cast<const char*>(name), length};
}

namespace {

Task<Result<std::unique_ptr<runtime::Stream>>> Handshake(std::unique_ptr<runtime::Stream> lower,
                                                         SSL_CTX* ctx, bool server,
                                                         std::string server_name, Duration timeout,
                                                         VerifyHook verify) {
  auto impl = std::make_shared<TlsStream::Impl>(std::move(lower));
  ERR_clear_error();
  impl->ssl = SSL_new(ctx);
  if (impl->ssl == nullptr) co_return Fail(ErrorCode::kInternal, "SSL_new: " + SslReason());
  BIO* bio = BIO_new(StreamBioMethod());
  if (bio == nullptr) co_return Fail(ErrorCode::kInternal, "BIO_new: " + SslReason());
  BIO_set_data(bio, impl.get());
  SSL_set_bio(impl->ssl, bio, bio);
  if (server) {
    SSL_set_accept_state(impl->ssl);
  } else {
    SSL_set_connect_state(impl->ssl);
    if (!server_name.empty() && SSL_set_tlsext_host_name(impl->ssl, server_name.c_str()) != 1) {
      co_return Fail(ErrorCode::kInvalidArgument, "bad TLS server name " + server_name);
    }
  }

  auto& io = static_cast<asio::io_context&>(asio::query(impl->ex, asio::execution::context));
  runtime::Deadline<runtime::Stream> deadline(io, *impl->lower);
  deadline.Arm(timeout);
  const auto failed = [&](const error_code& ec, std::string_view what) {
    if (deadline.expired()) {
      return Fail(ErrorCode::kDeadlineExceeded, "TLS handshake timed out");
    }
    if (ec == asio::error::eof || ec == asio::error::connection_reset) {
      return Fail(ErrorCode::kConnectionClosed,
                  std::string("peer closed during the TLS handshake"));
    }
    return Fail(ErrorCode::kConnectionClosed,
                fmt::format("TLS handshake {}: {}", what, ec.message()));
  };
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(impl->ssl);
    const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(impl->ssl, r);
    // The failure reason is read now: writing the alert below must not lose it.
    std::string reason;
    if (err != SSL_ERROR_NONE && err != SSL_ERROR_WANT_READ) reason = SslReason();
    if (!impl->pending.empty()) {
      std::string out;
      std::swap(out, impl->pending);
      auto [ec, n] = co_await asio::async_write(*impl->lower, asio::buffer(out), kNoThrow);
      if (ec && reason.empty()) co_return failed(ec, "write");
    }
    if (err == SSL_ERROR_NONE) break;
    if (err != SSL_ERROR_WANT_READ) {
      if (reason == "TLS failure" && err == SSL_ERROR_SYSCALL) {
        co_return Fail(ErrorCode::kConnectionClosed, "peer closed during the TLS handshake");
      }
      co_return Fail(ErrorCode::kConnectFailed, "TLS handshake failed: " + reason);
    }
    impl->input_begin = impl->input_end = 0;
    auto [ec, n] = co_await impl->lower->async_read_some(
        asio::buffer(impl->input.get(), kInputBytes), kNoThrow);
    if (ec) co_return failed(ec, "read");
    impl->input_end = n;
  }
  if (verify) {
    if (Result<void> v = verify(impl->ssl); !v) co_return tl::unexpected(v.error());
  }
  co_return std::unique_ptr<runtime::Stream>(std::make_unique<TlsStream>(std::move(impl)));
}

}  // namespace

Task<Result<std::unique_ptr<runtime::Stream>>> ServerHandshake(
    std::unique_ptr<runtime::Stream> lower, ssl_ctx_st* ctx, Duration timeout) {
  return Handshake(std::move(lower), ctx, /*server=*/true, std::string(), timeout, VerifyHook());
}

Task<Result<std::unique_ptr<runtime::Stream>>> ClientHandshake(
    std::unique_ptr<runtime::Stream> lower, ssl_ctx_st* ctx, std::string server_name,
    Duration timeout, VerifyHook verify) {
  return Handshake(std::move(lower), ctx, /*server=*/false, std::move(server_name), timeout,
                   std::move(verify));
}

std::string NegotiatedAlpn(runtime::Stream& stream) {
  auto* tls = dynamic_cast<TlsStream*>(&stream);
  if (tls == nullptr) return "";
  const unsigned char* name = nullptr;
  unsigned int size = 0;
  SSL_get0_alpn_selected(tls->native_handle(), &name, &size);
  return name == nullptr ? "" : std::string(reinterpret_cast<const char*>(name), size);
}

}  // namespace ferry::tls
