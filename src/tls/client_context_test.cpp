#include "tls/client_context.hpp"

#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <sys/stat.h>
#include <unistd.h>

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
namespace fs = std::filesystem;

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
using StreamResult = std::optional<Result<std::unique_ptr<runtime::Stream>>>;

Task<void> RunServer(std::unique_ptr<runtime::Stream> lower, SSL_CTX* ctx, StreamResult* out) {
  *out = co_await ServerHandshake(std::move(lower), ctx, 2s);
}

Task<void> RunClient(std::unique_ptr<runtime::Stream> lower,
                     std::shared_ptr<const ClientContext> context, const std::string* host,
                     const std::string* where, StreamResult* out) {
  *out = co_await context->Handshake(std::move(lower), *host, *where, 2s);
}

// A CA, another CA, and certificates of both, written to files in a temp dir.
class ClientContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry_client_ctx_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text, mode_t mode = 0644) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    ::chmod(path.c_str(), mode);
    return path;
  }

  Ctx ServerCtx(const Issued& cert, bool ask_client_cert) {
    Ctx ctx(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx.get(), cert.cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), cert.key.get());
    if (ask_client_cert) {
      X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), ca_.cert.get());
      SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
    }
    return ctx;
  }

  // Handshakes `context` (as a client of `host`) with a server presenting `cert`.
  struct Outcome {
    StreamResult server;
    StreamResult client;
  };
  Outcome Handshake(std::shared_ptr<const ClientContext> context, const Issued& cert,
                    const std::string& host, bool ask_client_cert = false) {
    asio::io_context io;
    runtime::TaskGroup tasks(io.get_executor());
    Ctx server_ctx = ServerCtx(cert, ask_client_cert);
    auto [a, b] = runtime::MemoryStream::Pair(io.get_executor());
    Outcome out;
    const std::string where = "test endpoint";
    tasks.Spawn(RunServer(std::move(a), server_ctx.get(), &out.server));
    tasks.Spawn(RunClient(std::move(b), context, &host, &where, &out.client));
    RunUntil(io, [&] { return out.server && out.client; });
    tasks.CancelAll();
    RunUntil(
        io, [] { return false; }, 20ms);
    return out;
  }

  static std::string ServerNameSeen(const Outcome& outcome) {
    auto* stream = dynamic_cast<TlsStream*>(outcome.server->value().get());
    const char* name = SSL_get_servername(stream->native_handle(), TLSEXT_NAMETYPE_host_name);
    return name == nullptr ? "" : name;
  }

  std::shared_ptr<const ClientContext> Make(const config::ServiceTls& tls,
                                            const config::Mesh* mesh = nullptr,
                                            const std::string& service = "orders") {
    auto made = ClientContext::Create(service, tls, mesh);
    EXPECT_TRUE(made) << made.error().message();
    return made ? *made : nullptr;
  }

  fs::path dir_;
  Issued ca_ = Issue("mesh ca", "URI:spiffe://example.org", nullptr);
  Issued other_ca_ = Issue("other ca", "", nullptr);
  Issued server_ = Issue("api", "DNS:api.example.test,IP:127.0.0.1", &ca_);
  Issued orders_ = Issue("orders", "URI:spiffe://example.org/service/orders", &ca_);
  Issued billing_ = Issue("billing", "URI:spiffe://example.org/service/billing", &ca_);
  Issued gateway_ = Issue("gateway", "URI:spiffe://example.org/service/gateway", &ca_);
  Issued stranger_ = Issue("api", "DNS:api.example.test", &other_ca_);
};

TEST_F(ClientContextTest, VerifiesTheChainAndTheHostAndSendsSni) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  auto out = Handshake(Make(tls), server_, "api.example.test");
  ASSERT_TRUE(out.client && *out.client) << out.client->error().message();
  EXPECT_EQ(ServerNameSeen(out), "api.example.test");
}

TEST_F(ClientContextTest, ABundleWithSeveralRootsVerifiesEither) {
  config::ServiceTls tls;
  tls.ca = Write("bundle.pem", other_ca_.CertPem() + ca_.CertPem());
  auto context = Make(tls);
  auto first = Handshake(context, server_, "api.example.test");
  EXPECT_TRUE(first.client && *first.client);
  auto second = Handshake(context, stranger_, "api.example.test");
  EXPECT_TRUE(second.client && *second.client);
}

TEST_F(ClientContextTest, AnIpEndpointIsCheckedAgainstTheSanIpsAndGetsNoSni) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  auto out = Handshake(Make(tls), server_, "127.0.0.1");
  ASSERT_TRUE(out.client && *out.client) << out.client->error().message();
  EXPECT_EQ(ServerNameSeen(out), "");
  auto wrong = Handshake(Make(tls), server_, "127.0.0.2");
  ASSERT_TRUE(wrong.client && !*wrong.client);
  EXPECT_EQ(wrong.client->error().code(), ErrorCode::kTlsFailed);
}

TEST_F(ClientContextTest, AnotherCaIsATlsFailure) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  auto out = Handshake(Make(tls), stranger_, "api.example.test");
  ASSERT_TRUE(out.client && !*out.client);
  EXPECT_EQ(out.client->error().code(), ErrorCode::kTlsFailed);
  EXPECT_NE(out.client->error().message().find("test endpoint"), std::string::npos);
}

TEST_F(ClientContextTest, AWrongHostNameIsATlsFailure) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  auto out = Handshake(Make(tls), server_, "other.example.test");
  ASSERT_TRUE(out.client && !*out.client);
  EXPECT_EQ(out.client->error().code(), ErrorCode::kTlsFailed);
  EXPECT_NE(out.client->error().message().find("does not name the host 'other.example.test'"),
            std::string::npos)
      << out.client->error().message();
}

TEST_F(ClientContextTest, ServerNameOverridesTheEndpointHost) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  tls.server_name = "api.example.test";
  auto out = Handshake(Make(tls), server_, "10.1.2.3");
  ASSERT_TRUE(out.client && *out.client) << out.client->error().message();
  EXPECT_EQ(ServerNameSeen(out), "api.example.test");
}

std::string PinOf(const Issued& cert) {
  unsigned char* der = nullptr;
  const int n = i2d_PUBKEY(cert.key.get(), &der);
  unsigned char digest[32];
  unsigned int size = 0;
  EVP_Digest(der, static_cast<std::size_t>(n), digest, &size, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  unsigned char text[64];
  EVP_EncodeBlock(text, digest, 32);
  return reinterpret_cast<const char*>(text);
}

TEST_F(ClientContextTest, PinsAreCheckedOnTopOfTheChain) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  tls.pin_sha256 = {PinOf(orders_), PinOf(server_)};
  auto ok = Handshake(Make(tls), server_, "api.example.test");
  EXPECT_TRUE(ok.client && *ok.client);
  tls.pin_sha256 = {PinOf(orders_)};
  auto refused = Handshake(Make(tls), server_, "api.example.test");
  ASSERT_TRUE(refused.client && !*refused.client);
  EXPECT_EQ(refused.client->error().code(), ErrorCode::kTlsFailed);
  EXPECT_NE(refused.client->error().message().find("pin"), std::string::npos);
}

TEST_F(ClientContextTest, MeshNeedsTheServiceIdentityAndPresentsTheNodeCertificate) {
  config::Mesh mesh{Write("gateway.pem", gateway_.CertPem()),
                    Write("gateway.key", gateway_.KeyPem(), 0600), Write("ca.pem", ca_.CertPem()),
                    std::nullopt};
  config::ServiceTls tls{.mesh = true};
  auto context = Make(tls, &mesh, "orders");
  ASSERT_TRUE(context);
  EXPECT_EQ(context->expected_identity(), "spiffe://example.org/service/orders");
  auto out = Handshake(context, orders_, "10.0.0.9", /*ask_client_cert=*/true);
  ASSERT_TRUE(out.client && *out.client) << out.client->error().message();
  ASSERT_TRUE(out.server && *out.server) << out.server->error().message();
  EXPECT_EQ(out.server->value()->peer().identity, "spiffe://example.org/service/gateway");

  auto impostor = Handshake(context, billing_, "10.0.0.9", /*ask_client_cert=*/true);
  ASSERT_TRUE(impostor.client && !*impostor.client);
  EXPECT_EQ(impostor.client->error().code(), ErrorCode::kTlsFailed);
  EXPECT_NE(impostor.client->error().message().find(
                "the server is spiffe://example.org/service/billing, not "
                "spiffe://example.org/service/orders"),
            std::string::npos)
      << impostor.client->error().message();
}

TEST_F(ClientContextTest, AKeyOthersCanReadIsRefused) {
  config::ServiceTls tls;
  tls.ca = Write("ca.pem", ca_.CertPem());
  tls.client_certificate = config::TlsCertificate{Write("c.pem", gateway_.CertPem()),
                                                  Write("c.key", gateway_.KeyPem(), 0644)};
  auto made = ClientContext::Create("orders", tls, nullptr);
  ASSERT_FALSE(made);
  EXPECT_EQ(made.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(ClientContextTest, AMissingCaFileIsAnError) {
  config::ServiceTls tls;
  tls.ca = (dir_ / "nope.pem").string();
  auto made = ClientContext::Create("orders", tls, nullptr);
  ASSERT_FALSE(made);
  EXPECT_NE(made.error().message().find("nope.pem"), std::string::npos);
}

TEST_F(ClientContextTest, RegistryMakesANewContextOnlyWhenFilesOrSettingsChange) {
  config::Config config;
  config::Service service;
  service.name = "orders";
  service.tls = config::ServiceTls{.mesh = true};
  config.services["orders"] = service;
  config.services["plain"] = config::Service{.name = "plain"};
  config.mesh = config::Mesh{Write("gateway.pem", gateway_.CertPem()),
                             Write("gateway.key", gateway_.KeyPem(), 0600),
                             Write("ca.pem", ca_.CertPem()), std::nullopt};
  ClientTlsRegistry registry;
  ASSERT_TRUE(registry.Apply(config));
  EXPECT_EQ(registry.Find("plain"), nullptr);
  std::shared_ptr<ClientTls> tls = registry.Find("orders");
  ASSERT_TRUE(tls);
  const std::uint64_t first = tls->generation();
  ASSERT_TRUE(registry.Apply(config));
  EXPECT_EQ(tls->generation(), first);

  // A renewed certificate (another file written and renamed over the old one).
  Issued renewed = Issue("gateway", "URI:spiffe://example.org/service/gateway", &ca_);
  Write("gateway.key.new", renewed.KeyPem(), 0600);
  Write("gateway.pem.new", renewed.CertPem());
  fs::rename(dir_ / "gateway.key.new", dir_ / "gateway.key");
  fs::rename(dir_ / "gateway.pem.new", dir_ / "gateway.pem");
  ASSERT_TRUE(registry.Apply(config));
  EXPECT_EQ(registry.Find("orders"), tls);  // the same holder, shared by the pools
  EXPECT_EQ(tls->generation(), first + 1);

  // A key that does not fit keeps the running context.
  Write("gateway.key", other_ca_.KeyPem(), 0600);
  ASSERT_TRUE(registry.Apply(config));
  EXPECT_EQ(tls->generation(), first + 1);

  // A new service whose files are bad refuses the whole Apply, and changes nothing.
  config::Service broken;
  broken.name = "broken";
  broken.tls = config::ServiceTls{.ca = (dir_ / "missing.pem").string()};
  config.services["broken"] = broken;
  EXPECT_FALSE(registry.Apply(config));
  EXPECT_EQ(registry.Find("broken"), nullptr);
  EXPECT_EQ(registry.Find("orders"), tls);
}

}  // namespace
}  // namespace ferry::tls
