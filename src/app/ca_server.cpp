#include "app/ca_server.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/signal_set.hpp>
#include <cstdio>
#include <filesystem>

#include "app/exit_code.hpp"
#include "config/address.hpp"
#include "mesh/atomic_file.hpp"
#include "mesh/csr.hpp"
#include "mesh/spiffe.hpp"
#include "runtime/acceptor.hpp"
#include "runtime/task_group.hpp"
#include "server/server.hpp"
#include "tls/server_context.hpp"

namespace ferry::app {
namespace {

constexpr std::string_view kSignPath = "/v1/sign";
// The CA's own server certificate, made at each start unless --cert/--key name one.
constexpr Duration kServerCertTtl = std::chrono::hours(24 * 365);
constexpr Duration kDrainTime = std::chrono::seconds(5);

CaService::Answer Refuse(int status, std::string_view code, std::string_view message) {
  return {status, std::string(code), server::ErrorJson(status, code, message)};
}

// The token of "Bearer TOKEN" (the scheme case-insensitive, RFC 6750); "" otherwise.
std::string_view BearerToken(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  return token;
}

server::ServerOptions CaServerOptions(std::shared_ptr<const tls::ServerContext> tls) {
  server::ServerOptions o;
  o.max_header_bytes = 16 * 1024;
  o.max_headers = 64;
  o.max_body_bytes = mesh::kMaxCsrBytes;
  o.header_read_timeout = std::chrono::seconds(10);
  o.idle_timeout = std::chrono::seconds(30);
  o.request_timeout = std::chrono::seconds(30);
  o.tls = std::move(tls);
  return o;
}

// Issues the server's own certificate (CN ferry-ca; the listen address and `names` as SANs;
// serverAuth only, so it can never act as a mesh client) into DIR/serve.pem and DIR/serve.key.
Result<config::TlsCertificate> IssueServerCertificate(const mesh::Authority& ca,
                                                      const config::Address& listen,
                                                      const std::vector<std::string>& names) {
  mesh::LeafSpec spec;
  spec.common_name = "ferry-ca";
  spec.client_auth = false;
  spec.ttl = kServerCertTtl;
  auto add = [&spec](const std::string& name) {
    auto& list = config::IsIpLiteral(name) ? spec.ip_addresses : spec.dns_names;
    if (std::find(list.begin(), list.end(), name) == list.end()) list.push_back(name);
  };
  if (listen.host == "0.0.0.0" || listen.host == "::") {
    // Every address: the loopback names, and the machine's own name.
    add("localhost");
    add("127.0.0.1");
    add("::1");
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) == 0 && config::IsDnsName(host)) add(host);
  } else {
    const std::string host = config::CanonicalHost(listen.host);
    add(host);
    if (host.starts_with("127.") || host == "::1") add("localhost");
  }
  for (const std::string& name : names) add(name);
  // A key and a CSR, made the way a node makes its own; the CSR's identity is not used.
  auto made = mesh::MakeKeyAndCsr(mesh::ServiceId(ca.trust_domain(), "ferry-ca"));
  if (!made) return tl::unexpected(made.error());
  auto csr = mesh::CheckCsr(made->csr_pem, ca.trust_domain());
  if (!csr) return tl::unexpected(csr.error());
  auto leaf = ca.Sign(spec, csr->public_key.get());
  if (!leaf) return tl::unexpected(leaf.error());
  config::TlsCertificate files;
  files.cert = (std::filesystem::path(ca.dir()) / "serve.pem").string();
  files.key = (std::filesystem::path(ca.dir()) / "serve.key").string();
  if (auto r = mesh::WriteFileAtomically(files.key, made->key_pem, 0600, false); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = mesh::WriteFileAtomically(files.cert, leaf->cert_pem, 0644, false); !r) {
    return tl::unexpected(r.error());
  }
  return files;
}

Task<void> StopWhenDrained(server::Server& server, asio::io_context& io) {
  co_await server.Wait();
  io.stop();
}

}  // namespace

CaService::CaService(mesh::Authority ca, Duration ttl)
    : ca_(std::move(ca)), tokens_(ca_.dir()), ttl_(ttl) {}

CaService::Answer CaService::Sign(std::string_view csr_pem, const std::string& peer_identity,
                                  std::string_view authorization) {
  auto csr = mesh::CheckCsr(csr_pem, ca_.trust_domain());
  if (!csr) return Refuse(400, "csr_invalid", csr.error().message());
  const std::string_view token = BearerToken(authorization);
  if (peer_identity.empty() && token.empty()) {
    return Refuse(401, "token_missing",
                  "present your current mesh certificate, or a bootstrap token as "
                  "Authorization: Bearer TOKEN (ferry ca token)");
  }
  if (!peer_identity.empty() && peer_identity != csr->spiffe_id) {
    // A certificate speaks for its own identity only; a token does not widen that.
    return Refuse(
        403, "identity_mismatch",
        fmt::format("the client certificate is {}; it may renew only that identity, not {}",
                    peer_identity, csr->spiffe_id));
  }
  mesh::LeafSpec spec;
  spec.common_name = csr->service;
  spec.spiffe_id = csr->spiffe_id;
  spec.ttl = ttl_;
  auto leaf = ca_.Sign(spec, csr->public_key.get());
  if (!leaf) {
    spdlog::error("ca: signing {}: {}", csr->spiffe_id, leaf.error().message());
    return Refuse(500, "internal", "the CA could not sign (see its log)");
  }
  const char* how = "certificate";
  if (peer_identity.empty()) {
    // Spent only now that the certificate is made (a failure to sign keeps it), and before it
    // is returned: a second request with the token finds no file.
    auto spent = tokens_.Spend(token, csr->service);
    if (!spent) {
      switch (spent.error().code()) {
        case ErrorCode::kNotFound:
          return Refuse(401, "token_invalid", "the token is unknown or already used");
        case ErrorCode::kFailedPrecondition:
          return Refuse(401, "token_expired", "the token has expired");
        case ErrorCode::kInvalidArgument:
          return Refuse(403, "token_wrong_service",
                        fmt::format("the token is not for {}", csr->spiffe_id));
        default:
          spdlog::error("ca: spending a token: {}", spent.error().message());
          return Refuse(500, "internal", "the CA could not spend the token (see its log)");
      }
    }
    how = "bootstrap token";
  }
  spdlog::info("ca: issued {} serial {} until {:%Y-%m-%dT%H:%M:%SZ} (by {})", csr->spiffe_id,
               leaf->serial, std::chrono::time_point_cast<std::chrono::seconds>(leaf->not_after),
               how);
  return {200, "", std::move(leaf->cert_pem)};
}

Task<void> CaService::Serve(server::Request& request, server::Response& response) {
  Answer answer;
  const std::string_view path = request.head().path();
  if (path != kSignPath) {
    answer = Refuse(404, "not_found", fmt::format("no endpoint {}; POST {}", path, kSignPath));
  } else if (request.head().method != "POST") {
    answer = Refuse(405, "method_not_allowed", "use POST with a PEM CSR");
  } else {
    // A failed read is answered by the server (400, 408, 413) once this returns.
    auto body = co_await request.ReadWhole(mesh::kMaxCsrBytes);
    if (!body) co_return;
    const std::string authorization(request.head().headers.Get("authorization").value_or(""));
    answer = Sign(*body, request.peer().identity, authorization);
  }
  server::ResponseHead head;
  head.status = answer.status;
  head.headers.Add("content-type",
                   answer.code.empty() ? "application/x-pem-file" : "application/json");
  head.headers.Add("cache-control", "no-store");
  if (answer.status == 401) head.headers.Add("www-authenticate", "Bearer realm=\"ferry-ca\"");
  co_await response.Send(head, answer.body);
}

int RunCaServer(const CaServeOptions& options) {
  auto fail = [](const std::string& message) {
    fmt::print(stderr, "ferry ca serve: {}\n", message);
    return kExitFailure;
  };
  auto listen = config::ParseAddress(options.listen, config::AddressUse::kListener);
  if (!listen) return fail(listen.error().message());
  auto ca = mesh::Authority::Load(options.dir);
  if (!ca) return fail(ca.error().message());
  const std::string trust_domain = ca->trust_domain();

  config::ListenerTls tls;
  if (options.cert.empty()) {
    auto issued = IssueServerCertificate(*ca, *listen, options.names);
    if (!issued) return fail(issued.error().message());
    tls.certificates.push_back(*issued);
  } else {
    tls.certificates.push_back({options.cert, options.key});
  }
  tls.min_version = config::TlsVersion::k1_2;
  tls.client_ca = (std::filesystem::path(options.dir) / "ca.pem").string();
  auto context = tls::ServerContext::Create(tls, std::nullopt, tls::ClientCertificates::kOptional);
  if (!context) return fail(context.error().message());

  CaService service(std::move(*ca), options.ttl);
  if (const std::size_t n = service.tokens().RemoveExpired(); n > 0) {
    spdlog::info("ca: removed {} expired token(s)", n);
  }
  asio::io_context io{1};
  server::Server server(io, CaServerOptions(*context), service);
  auto acceptor = runtime::Acceptor::Open(io, *listen, /*reuse_port=*/false, 128);
  if (!acceptor) return fail(acceptor.error().message());
  const std::string bound = (*acceptor)->local_address();
  server.Listen(std::move(*acceptor));

  runtime::TaskGroup tasks(io.get_executor());
  asio::steady_timer force_close(io);
  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const error_code& ec, int) {
    if (ec) return;
    spdlog::info("ca: stopping");
    server.Drain();
    tasks.Spawn(StopWhenDrained(server, io));
    force_close.expires_after(kDrainTime);
    force_close.async_wait([&server](const error_code& e) {
      if (!e) server.Close();
    });
  });
  spdlog::info("ferry ca serve: listening on https://{} for spiffe://{} (certificates for {})",
               bound, trust_domain, FormatDuration(options.ttl));
  io.run();
  return kExitOk;
}

}  // namespace ferry::app
