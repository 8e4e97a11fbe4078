#include "tls/tls_stream.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <boost/asio/read.hpp>
#include <optional>

#include "runtime/acceptor.hpp"
#include "runtime/connect.hpp"
#include "runtime/task_group.hpp"
#include "tls/test_pki.hpp"

namespace ferry::tls {
namespace {

using namespace std::chrono_literals;
using testing::Issue;
using testing::Issued;

template <typename Pred>
void RunUntil(asio::io_context& io, Pred done, std::chrono::milliseconds limit = 3000ms) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_for(5ms);
  }
}

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using Ctx = std::unique_ptr<SSL_CTX, CtxFree>;

struct Pki {
  Issued ca = Issue("test ca", "", nullptr);
  Issued server = Issue("server", "DNS:server.test", &ca);
  Issued client = Issue("client", "URI:spiffe://test.example/service/orders", &ca);
};

Ctx ServerCtx(const Pki& pki, bool ask_client_cert) {
  Ctx ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_use_certificate(ctx.get(), pki.server.cert.get());
  SSL_CTX_use_PrivateKey(ctx.get(), pki.server.key.get());
  if (ask_client_cert) {
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), pki.ca.cert.get());
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return ctx;
}

Ctx ClientCtx(const Pki& pki, bool with_cert) {
  Ctx ctx(SSL_CTX_new(TLS_client_method()));
  X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), pki.ca.cert.get());
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  X509_VERIFY_PARAM_set1_host(SSL_CTX_get0_param(ctx.get()), "server.test", 0);
  if (with_cert) {
    SSL_CTX_use_certificate(ctx.get(), pki.client.cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), pki.client.key.get());
  }
  return ctx;
}

using StreamResult = std::optional<Result<std::unique_ptr<runtime::Stream>>>;

Task<void> RunServer(std::unique_ptr<runtime::Stream> lower, SSL_CTX* ctx, Duration timeout,
                     StreamResult* out) {
  *out = co_await ServerHandshake(std::move(lower), ctx, timeout);
}

Task<void> RunClient(std::unique_ptr<runtime::Stream> lower, SSL_CTX* ctx, Duration timeout,
                     StreamResult* out) {
  *out = co_await ClientHandshake(std::move(lower), ctx, "server.test", timeout);
}

// Both ends of a TLS connection over a MemoryStream pair (the server end's lower peer is set).
struct Connected {
  std::unique_ptr<runtime::Stream> server;
  std::unique_ptr<runtime::Stream> client;
};

Connected Connect(asio::io_context& io, runtime::TaskGroup& tasks, SSL_CTX* server_ctx,
                  SSL_CTX* client_ctx) {
  auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
  a->SetPeer({"10.0.0.7", 5123, "10.0.0.7:5123", ""});
  StreamResult s, c;
  tasks.Spawn(RunServer(std::move(a), server_ctx, 2s, &s));
  tasks.Spawn(RunClient(std::move(b), client_ctx, 2s, &c));
  RunUntil(io, [&] { return s && c; });
  Connected out;
  if (s && *s) out.server = std::move(**s);
  if (c && *c) out.client = std::move(**c);
  if (s && !*s) ADD_FAILURE() << "server: " << s->error().message();
  if (c && !*c) ADD_FAILURE() << "client: " << c->error().message();
  return out;
}

Task<void> WriteAll(runtime::Stream* s, std::string data, std::optional<error_code>* out) {
  auto [ec, n] = co_await asio::async_write(*s, asio::buffer(data), kNoThrow);
  *out = ec;
}

Task<void> ReadUntilEof(runtime::Stream* s, std::string* out, std::optional<error_code>* end) {
  char buf[4096];
  for (;;) {
    auto [ec, n] = co_await s->async_read_some(asio::buffer(buf), kNoThrow);
    out->append(buf, n);
    if (ec) {
      *end = ec;
      co_return;
    }
  }
}

TEST(TlsStream, HandshakeThenBytesBothWays) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(pki, false);
  Connected conn = Connect(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(conn.server && conn.client);
  EXPECT_EQ(conn.server->peer().address, "10.0.0.7:5123");
  EXPECT_EQ(conn.server->peer().identity, "");

  std::string big(1 << 20, 'x');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  std::optional<error_code> wrote, client_end, server_end, wrote_back;
  std::string got_by_server, got_by_client;
  tasks.Spawn(WriteAll(conn.client.get(), big, &wrote));
  tasks.Spawn(ReadUntilEof(conn.server.get(), &got_by_server, &server_end));
  RunUntil(io, [&] { return wrote.has_value() && got_by_server.size() == big.size(); });
  ASSERT_TRUE(wrote.has_value());
  EXPECT_FALSE(*wrote);
  EXPECT_EQ(got_by_server, big);

  // close_notify from the client: the server reads EOF and can still answer.
  conn.client->ShutdownSend();
  RunUntil(io, [&] { return server_end.has_value(); });
  ASSERT_TRUE(server_end.has_value());
  EXPECT_EQ(*server_end, asio::error::eof);
  EXPECT_TRUE(conn.server->PeerGone());
  tasks.Spawn(WriteAll(conn.server.get(), "answer after EOF", &wrote_back));
  tasks.Spawn(ReadUntilEof(conn.client.get(), &got_by_client, &client_end));
  RunUntil(io, [&] { return got_by_client == "answer after EOF"; });
  EXPECT_EQ(got_by_client, "answer after EOF");
  conn.server->ShutdownSend();
  RunUntil(io, [&] { return client_end.has_value(); });
  ASSERT_TRUE(client_end.has_value());
  EXPECT_EQ(*client_end, asio::error::eof);
}

TEST(TlsStream, GatheredWriteArrivesInOrder) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(pki, false);
  Connected conn = Connect(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(conn.server && conn.client);
  std::array<asio::const_buffer, 3> parts = {asio::buffer(std::string_view("HTTP/1.1 200 OK\r\n")),
                                             asio::buffer(std::string_view("a: b\r\n\r\n")),
                                             asio::buffer(std::string_view("body"))};
  std::optional<error_code> wrote;
  asio::async_write(*conn.server, parts, [&](error_code ec, std::size_t) { wrote = ec; });
  std::string got;
  std::optional<error_code> end;
  tasks.Spawn(ReadUntilEof(conn.client.get(), &got, &end));
  RunUntil(io, [&] { return got.size() >= 29; });
  EXPECT_EQ(got, "HTTP/1.1 200 OK\r\na: b\r\n\r\nbody");
  ASSERT_TRUE(wrote.has_value());
  EXPECT_FALSE(*wrote);
}

TEST(TlsStream, VerifiedClientCertificateGivesTheIdentity) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, true), cctx = ClientCtx(pki, true);
  Connected conn = Connect(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(conn.server && conn.client);
  EXPECT_EQ(conn.server->peer().identity, "spiffe://test.example/service/orders");
  EXPECT_EQ(conn.server->peer().ip, "10.0.0.7");
}

TEST(TlsStream, MissingClientCertificateFailsTheHandshake) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, true), cctx = ClientCtx(pki, false);
  auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
  StreamResult s, c;
  tasks.Spawn(RunServer(std::move(a), sctx.get(), 2s, &s));
  tasks.Spawn(RunClient(std::move(b), cctx.get(), 2s, &c));
  RunUntil(io, [&] { return s.has_value(); });
  ASSERT_TRUE(s.has_value());
  ASSERT_FALSE(*s);
  EXPECT_EQ(s->error().code(), ErrorCode::kConnectFailed);
  EXPECT_NE(s->error().message().find("certificate"), std::string::npos) << s->error().message();
}

TEST(TlsStream, UntrustedServerFailsTheClientHandshake) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki, other;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(other, false);
  auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
  StreamResult s, c;
  tasks.Spawn(RunServer(std::move(a), sctx.get(), 2s, &s));
  tasks.Spawn(RunClient(std::move(b), cctx.get(), 2s, &c));
  RunUntil(io, [&] { return c.has_value(); });
  ASSERT_TRUE(c.has_value());
  ASSERT_FALSE(*c);
  EXPECT_EQ(c->error().code(), ErrorCode::kConnectFailed);
  EXPECT_NE(c->error().message().find("certificate verify failed"), std::string::npos)
      << c->error().message();
}

TEST(TlsStream, HandshakeTimesOutWhenTheClientIsSilent) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false);
  auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
  StreamResult s;
  const auto start = std::chrono::steady_clock::now();
  tasks.Spawn(RunServer(std::move(a), sctx.get(), 100ms, &s));
  RunUntil(io, [&] { return s.has_value(); });
  ASSERT_TRUE(s.has_value());
  ASSERT_FALSE(*s);
  EXPECT_EQ(s->error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

TEST(TlsStream, PlaintextHttpFailsTheHandshakeCleanly) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false);
  auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
  StreamResult s;
  tasks.Spawn(RunServer(std::move(a), sctx.get(), 2s, &s));
  std::optional<error_code> wrote;
  tasks.Spawn(WriteAll(b.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &wrote));
  RunUntil(io, [&] { return s.has_value(); });
  ASSERT_TRUE(s.has_value());
  ASSERT_FALSE(*s);
  EXPECT_EQ(s->error().code(), ErrorCode::kConnectFailed);
}

Task<void> ReadOnce(runtime::Stream* s, std::optional<error_code>* out) {
  char buf[64];
  auto [ec, n] = co_await s->async_read_some(asio::buffer(buf), kNoThrow);
  *out = ec;
}

TEST(TlsStream, CancelAllReachesAPendingRead) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(pki, false);
  Connected conn = Connect(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(conn.server && conn.client);
  runtime::TaskGroup readers(io.get_executor());
  std::optional<error_code> got;
  readers.Spawn(ReadOnce(conn.server.get(), &got));
  RunUntil(
      io, [] { return false; }, 50ms);
  EXPECT_FALSE(got.has_value());
  readers.CancelAll();
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, asio::error::operation_aborted);
  // The stream is still usable after a cancelled read.
  std::optional<error_code> wrote, again;
  tasks.Spawn(WriteAll(conn.client.get(), "later", &wrote));
  std::string rest;
  tasks.Spawn(ReadUntilEof(conn.server.get(), &rest, &again));
  RunUntil(io, [&] { return rest == "later"; });
  EXPECT_EQ(rest, "later");
}

TEST(TlsStream, WaitReadableCompletesWhenDataArrives) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(pki, false);
  Connected conn = Connect(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(conn.server && conn.client);
  std::optional<error_code> ready;
  conn.server->async_wait_readable([&](error_code ec) { ready = ec; });
  RunUntil(
      io, [] { return false; }, 30ms);
  EXPECT_FALSE(ready.has_value());
  std::optional<error_code> wrote;
  tasks.Spawn(WriteAll(conn.client.get(), "ping", &wrote));
  RunUntil(io, [&] { return ready.has_value(); });
  ASSERT_TRUE(ready.has_value());
  EXPECT_FALSE(*ready);
}

TEST(TlsStream, CloseEndsPendingOperations) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(pki, false);
  Connected conn = Connect(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(conn.server && conn.client);
  std::optional<error_code> got, peer_end;
  std::string ignored;
  tasks.Spawn(ReadOnce(conn.server.get(), &got));
  tasks.Spawn(ReadUntilEof(conn.client.get(), &ignored, &peer_end));
  RunUntil(
      io, [] { return false; }, 20ms);
  conn.server->Close();
  RunUntil(io, [&] { return got.has_value() && peer_end.has_value(); });
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(*got);
  ASSERT_TRUE(peer_end.has_value());
  conn.server.reset();  // destroyed with nothing pending
  RunUntil(
      io, [] { return false; }, 10ms);
}

// Over real loopback TCP, the way the server and the upstream client use it.
Task<void> AcceptTls(runtime::Acceptor* acceptor, SSL_CTX* ctx, StreamResult* out) {
  auto lower = co_await acceptor->Accept();
  if (!lower) {
    *out = tl::unexpected(lower.error());
    co_return;
  }
  *out = co_await ServerHandshake(std::move(*lower), ctx, 2s);
}

Task<void> ConnectTls(asio::io_context* io, std::uint16_t port, SSL_CTX* ctx, StreamResult* out) {
  auto lower = co_await runtime::Connect(*io, "127.0.0.1", port, 2s);
  if (!lower) {
    *out = tl::unexpected(lower.error());
    co_return;
  }
  *out = co_await ClientHandshake(std::move(*lower), ctx, "server.test", 2s);
}

// Both ends of a TLS connection over loopback TCP once their handshakes are done (or failed).
std::pair<StreamResult, StreamResult> HandshakeOverTcp(asio::io_context& io,
                                                       runtime::TaskGroup& tasks, SSL_CTX* sctx,
                                                       SSL_CTX* cctx) {
  tcp::acceptor listening(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::uint16_t port = listening.local_endpoint().port();
  runtime::Acceptor acceptor(std::move(listening));
  StreamResult s, c;
  tasks.Spawn(AcceptTls(&acceptor, sctx, &s));
  tasks.Spawn(ConnectTls(&io, port, cctx, &c));
  RunUntil(io, [&] { return s && c; });
  return {std::move(s), std::move(c)};
}

TEST(TlsStream, WorksOverTcp) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, true), cctx = ClientCtx(pki, true);
  auto [s, c] = HandshakeOverTcp(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(s && *s) << (s ? s->error().message() : "no result");
  ASSERT_TRUE(c && *c) << (c ? c->error().message() : "no result");
  runtime::Stream* server = s->value().get();
  runtime::Stream* client = c->value().get();
  EXPECT_EQ(server->peer().ip, "127.0.0.1");
  EXPECT_EQ(server->peer().identity, "spiffe://test.example/service/orders");
  std::string big(300000, 'q');
  std::optional<error_code> wrote, end;
  std::string got;
  tasks.Spawn(WriteAll(client, big, &wrote));
  tasks.Spawn(ReadUntilEof(server, &got, &end));
  RunUntil(io, [&] { return got.size() == big.size(); });
  EXPECT_EQ(got, big);
  client->ShutdownSend();
  RunUntil(io, [&] { return end.has_value(); });
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(*end, asio::error::eof);
}

// Over TCP a TlsStream takes runtime::Stream's direct branch (composed operations with the
// caller's handler, no virtual call): the same behaviours as over MemoryStream.
TEST(TlsStream, DirectPathOverTcpCancelsWaitsAndCloses) {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  Pki pki;
  Ctx sctx = ServerCtx(pki, false), cctx = ClientCtx(pki, false);
  auto [s, c] = HandshakeOverTcp(io, tasks, sctx.get(), cctx.get());
  ASSERT_TRUE(s && *s && c && *c);
  runtime::Stream* server = s->value().get();
  runtime::Stream* client = c->value().get();

  // A pending read is cancelled by its task group and the stream stays usable.
  runtime::TaskGroup readers(io.get_executor());
  std::optional<error_code> got;
  readers.Spawn(ReadOnce(server, &got));
  RunUntil(
      io, [] { return false; }, 50ms);
  EXPECT_FALSE(got.has_value());
  readers.CancelAll();
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, asio::error::operation_aborted);

  // Bytes already decrypted but not handed out: waiting for readability completes at once.
  std::optional<error_code> wrote;
  tasks.Spawn(WriteAll(client, "0123456789", &wrote));
  char two[2];
  std::optional<std::size_t> first;
  server->async_read_some(asio::buffer(two),
                          [&](error_code ec, std::size_t n) { first = ec ? 0 : n; });
  RunUntil(io, [&] { return first.has_value(); });
  ASSERT_EQ(first, 2u);
  std::optional<error_code> ready;
  server->async_wait_readable([&](error_code ec) { ready = ec; });
  EXPECT_FALSE(ready.has_value());  // never completed inline
  RunUntil(io, [&] { return ready.has_value(); });
  ASSERT_TRUE(ready.has_value());
  EXPECT_FALSE(*ready);
  std::optional<std::size_t> rest;
  char eight[8];
  server->async_read_some(asio::buffer(eight),
                          [&](error_code ec, std::size_t n) { rest = ec ? 0 : n; });
  EXPECT_FALSE(rest.has_value());  // never completed inline
  RunUntil(io, [&] { return rest.has_value(); });
  ASSERT_EQ(rest, 8u);
  EXPECT_EQ(std::string_view(eight, 8), "23456789");

  // Close ends a pending read; the peer sees the connection end; writing fails after.
  std::optional<error_code> pending, peer_end;
  std::string ignored;
  tasks.Spawn(ReadOnce(server, &pending));
  tasks.Spawn(ReadUntilEof(client, &ignored, &peer_end));
  RunUntil(
      io, [] { return false; }, 20ms);
  server->Close();
  RunUntil(io, [&] { return pending.has_value() && peer_end.has_value(); });
  ASSERT_TRUE(pending.has_value());
  EXPECT_TRUE(*pending);
  ASSERT_TRUE(peer_end.has_value());
  std::optional<error_code> late;
  tasks.Spawn(WriteAll(server, "late", &late));
  RunUntil(io, [&] { return late.has_value(); });
  ASSERT_TRUE(late.has_value());
  EXPECT_TRUE(*late);
}

}  // namespace
}  // namespace ferry::tls
