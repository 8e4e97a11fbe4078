#include "tls/server_context.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "runtime/task_group.hpp"
#include "tls/test_pki.hpp"
#include "tls/tls_stream.hpp"

namespace ferry::tls {
namespace {

using namespace std::chrono_literals;
using testing::Issue;
using testing::Issued;

struct TempDir {
  TempDir() {
    char dir[] = "/tmp/ferry_tls_XXXXXX";
    path = ::mkdtemp(dir);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  // Writes the certificate and key as NAME.pem / NAME.key (key mode 600).
  config::TlsCertificate Write(const std::string& name, const Issued& issued) const {
    config::TlsCertificate out{path + "/" + name + ".pem", path + "/" + name + ".key"};
    std::ofstream(out.cert) << issued.CertPem();
    std::ofstream(out.key) << issued.KeyPem();
    ::chmod(out.key.c_str(), 0600);
    return out;
  }
  std::string WriteCa(const std::string& name, const Issued& ca) const {
    const std::string file = path + "/" + name + ".pem";
    std::ofstream(file) << ca.CertPem();
    return file;
  }
  std::string path;
};

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using Ctx = std::unique_ptr<SSL_CTX, CtxFree>;

// A client context that accepts any server certificate (these tests look at the server side),
// optionally presenting `cert`, at most TLS `max_version`.
Ctx Client(const Issued* cert = nullptr, int max_version = 0) {
  Ctx ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  if (max_version != 0) SSL_CTX_set_max_proto_version(ctx.get(), max_version);
  if (cert != nullptr) {
    SSL_CTX_use_certificate(ctx.get(), cert->cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), cert->key.get());
  }
  return ctx;
}

using StreamResult = std::optional<Result<std::unique_ptr<runtime::Stream>>>;

Task<void> RunServer(std::unique_ptr<runtime::Stream> lower, const ServerContext* ctx,
                     StreamResult* out) {
  *out = co_await ServerHandshake(std::move(lower), *ctx, 2s);
}

Task<void> RunClient(std::unique_ptr<runtime::Stream> lower, SSL_CTX* ctx, std::string sni,
                     StreamResult* out) {
  *out = co_await ClientHandshake(std::move(lower), ctx, sni, 2s);
}

struct Outcome {
  StreamResult server, client;
};

Outcome Handshake(const ServerContext& server, SSL_CTX* client, const std::string& sni = "") {
  asio::io_context io;
  runtime::TaskGroup tasks(io.get_executor());
  auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
  Outcome out;
  tasks.Spawn(RunServer(std::move(a), &server, &out.server));
  tasks.Spawn(RunClient(std::move(b), client, sni, &out.client));
  const auto until = std::chrono::steady_clock::now() + 3s;
  while (!(out.server && out.client) && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_for(5ms);
  }
  return out;
}

std::string ServerCn(const Outcome& o) {
  auto* tls = dynamic_cast<TlsStream*>(o.client->value().get());
  X509* cert = SSL_get0_peer_certificate(tls->native_handle());
  char cn[128] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  return cn;
}

TEST(ServerContext, SniPicksTheCertificateThatNamesIt) {
  TempDir dir;
  Issued ca = Issue("ca", "", nullptr);
  config::ListenerTls tls;
  tls.certificates = {dir.Write("a", Issue("a.test", "DNS:a.test", &ca)),
                      dir.Write("b", Issue("b.test", "DNS:b.test,DNS:*.b.test", &ca))};
  auto ctx = ServerContext::Create(tls, std::nullopt);
  ASSERT_TRUE(ctx) << ctx.error().message();
  Ctx client = Client();
  for (const auto& [sni, cn] :
       std::vector<std::pair<std::string, std::string>>{{"b.test", "b.test"},
                                                        {"x.b.test", "b.test"},
                                                        {"a.test", "a.test"},
                                                        {"other.test", "a.test"},
                                                        {"", "a.test"}}) {
    Outcome o = Handshake(**ctx, client.get(), sni);
    ASSERT_TRUE(o.client && *o.client) << sni;
    EXPECT_EQ(ServerCn(o), cn) << sni;
  }
}

TEST(ServerContext, MinVersion13RefusesATls12Client) {
  TempDir dir;
  Issued ca = Issue("ca", "", nullptr);
  config::ListenerTls tls;
  tls.certificates = {dir.Write("a", Issue("a.test", "DNS:a.test", &ca))};
  tls.min_version = config::TlsVersion::k1_3;
  auto ctx = ServerContext::Create(tls, std::nullopt);
  ASSERT_TRUE(ctx) << ctx.error().message();
  Ctx old_client = Client(nullptr, TLS1_2_VERSION);
  Outcome refused = Handshake(**ctx, old_client.get());
  ASSERT_TRUE(refused.server.has_value());
  EXPECT_FALSE(*refused.server);
  Ctx client = Client();
  Outcome ok = Handshake(**ctx, client.get());
  ASSERT_TRUE(ok.server && *ok.server);
}

TEST(ServerContext, MeshAdmitsOnlyItsTrustDomain) {
  TempDir dir;
  Issued ca = Issue("mesh ca", "", nullptr);
  Issued other_ca = Issue("other ca", "", nullptr);
  config::Mesh mesh;
  const auto node = dir.Write("node", Issue("node", "URI:spiffe://mesh.test/service/gw", &ca));
  mesh.cert = node.cert;
  mesh.key = node.key;
  mesh.ca = dir.WriteCa("ca", ca);
  config::ListenerTls tls;
  tls.mesh = true;
  auto ctx = ServerContext::Create(tls, mesh);
  ASSERT_TRUE(ctx) << ctx.error().message();

  Issued orders = Issue("orders", "URI:spiffe://mesh.test/service/orders", &ca);
  Ctx good = Client(&orders);
  Outcome ok = Handshake(**ctx, good.get());
  ASSERT_TRUE(ok.server && *ok.server) << (ok.server ? ok.server->error().message() : "");
  EXPECT_EQ(ok.server->value()->peer().identity, "spiffe://mesh.test/service/orders");

  Issued foreign = Issue("foreign", "URI:spiffe://other.test/service/orders", &ca);
  Issued stranger = Issue("stranger", "URI:spiffe://mesh.test/service/orders", &other_ca);
  Issued expired = Issue("expired", "URI:spiffe://mesh.test/service/orders", &ca, -7200, -3600);
  Issued anonymous = Issue("anon", "DNS:anon.test", &ca);
  for (const Issued* bad : {&foreign, &stranger, &expired, &anonymous}) {
    Ctx client = Client(bad);
    Outcome o = Handshake(**ctx, client.get());
    ASSERT_TRUE(o.server.has_value());
    EXPECT_FALSE(*o.server) << X509_get_subject_name(bad->cert.get());
  }
  Ctx none = Client();
  Outcome o = Handshake(**ctx, none.get());
  ASSERT_TRUE(o.server.has_value());
  EXPECT_FALSE(*o.server);
}

TEST(ServerContext, OptionalClientCertificatesAdmitNoneButVerifyOne) {
  TempDir dir;
  Issued ca = Issue("ca", "", nullptr);
  Issued other_ca = Issue("other ca", "", nullptr);
  config::ListenerTls tls;
  tls.certificates = {dir.Write("srv", Issue("srv", "DNS:srv.test", &ca))};
  tls.client_ca = dir.WriteCa("ca", ca);
  auto ctx = ServerContext::Create(tls, std::nullopt, ClientCertificates::kOptional);
  ASSERT_TRUE(ctx) << ctx.error().message();

  Ctx none = Client();
  Outcome anonymous = Handshake(**ctx, none.get());
  ASSERT_TRUE(anonymous.server && *anonymous.server);
  EXPECT_EQ(anonymous.server->value()->peer().identity, "");

  Issued orders = Issue("orders", "URI:spiffe://mesh.test/service/orders", &ca);
  Ctx good = Client(&orders);
  Outcome ok = Handshake(**ctx, good.get());
  ASSERT_TRUE(ok.server && *ok.server);
  EXPECT_EQ(ok.server->value()->peer().identity, "spiffe://mesh.test/service/orders");

  Issued stranger = Issue("stranger", "URI:spiffe://mesh.test/service/orders", &other_ca);
  Issued expired = Issue("expired", "URI:spiffe://mesh.test/service/orders", &ca, -7200, -3600);
  for (const Issued* bad : {&stranger, &expired}) {
    Ctx client = Client(bad);
    Outcome o = Handshake(**ctx, client.get());
    ASSERT_TRUE(o.server.has_value());
    EXPECT_FALSE(*o.server);
  }
  // Required (the default): no certificate, no connection.
  auto required = ServerContext::Create(tls, std::nullopt);
  ASSERT_TRUE(required);
  Outcome refused = Handshake(**required, none.get());
  ASSERT_TRUE(refused.server.has_value());
  EXPECT_FALSE(*refused.server);
}

TEST(ServerContext, RefusesAKeyOthersCanReadAndAKeyThatDoesNotFit) {
  TempDir dir;
  Issued ca = Issue("ca", "", nullptr);
  config::ListenerTls tls;
  tls.certificates = {dir.Write("a", Issue("a.test", "DNS:a.test", &ca))};
  ::chmod(tls.certificates[0].key.c_str(), 0644);
  auto readable = ServerContext::Create(tls, std::nullopt);
  ASSERT_FALSE(readable);
  EXPECT_NE(readable.error().message().find("chmod 600"), std::string::npos);

  const auto other = dir.Write("b", Issue("b.test", "DNS:b.test", &ca));
  tls.certificates[0].key = other.key;
  auto mismatched = ServerContext::Create(tls, std::nullopt);
  ASSERT_FALSE(mismatched);
  EXPECT_NE(mismatched.error().message().find("does not belong"), std::string::npos)
      << mismatched.error().message();
}

}  // namespace
}  // namespace ferry::tls
