#include "tls/client_context.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "config/address.hpp"
#include "mesh/openssl_ptr.hpp"
#include "mesh/spiffe.hpp"
#include "tls/private_key_file.hpp"
#include "tls/tls_stream.hpp"

namespace ferry::tls {
namespace {

using mesh::BioPtr;
using mesh::TakeOpenSslError;
using mesh::X509Ptr;

// ALPN, by the service's protocol (wire format: length-prefixed names, preferred first).
constexpr unsigned char kAlpnHttp1[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
constexpr unsigned char kAlpnH2[] = {2, 'h', '2'};
constexpr unsigned char kAlpnAuto[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

Result<std::array<unsigned char, 32>> DecodePin(const std::string& text) {
  std::array<unsigned char, 32> pin{};
  // 32 bytes are 44 base64 characters, the last one '='.
  if (text.size() != 44 || text.back() != '=' || text[42] == '=') {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("pin_sha256 '{}' is not the base64 of 32 bytes", text));
  }
  unsigned char out[33];
  if (EVP_DecodeBlock(out, reinterpret_cast<const unsigned char*>(text.data()), 44) != 33) {
    ERR_clear_error();
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("pin_sha256 '{}' is not the base64 of 32 bytes", text));
  }
  std::memcpy(pin.data(), out, 32);
  return pin;
}

Result<std::array<unsigned char, 32>> SpkiSha256(X509* cert) {
  std::array<unsigned char, 32> digest{};
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (length <= 0) return Fail(ErrorCode::kInternal, "cannot encode the server's public key");
  unsigned int size = 0;
  const bool ok = EVP_Digest(der, static_cast<std::size_t>(length), digest.data(), &size,
                             EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok || size != digest.size()) return Fail(ErrorCode::kInternal, "SHA-256 failed");
  return digest;
}

// The trust domain of the node's own mesh certificate (its first certificate).
Result<std::string> TrustDomainOf(const std::string& cert_path) {
  BioPtr bio(BIO_new_file(cert_path.c_str(), "r"));
  X509Ptr cert(bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!cert) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("mesh.cert {}: cannot read a certificate: {}", cert_path,
                            TakeOpenSslError("no PEM certificate")));
  }
  auto id = mesh::ParseSpiffeId(mesh::SpiffeIdOf(cert.get()));
  if (!id) {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("mesh.cert {}: no SPIFFE ID (one URI SAN spiffe://DOMAIN/...)", cert_path));
  }
  return id->trust_domain;
}

Result<void> UseCertificate(SSL_CTX* ctx, const config::TlsCertificate& pair, const char* what) {
  if (auto key_ok = CheckPrivateKeyFile(pair.key); !key_ok) return key_ok;
  if (SSL_CTX_use_certificate_chain_file(ctx, pair.cert.c_str()) != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{} cert {}: {}", what, pair.cert, TakeOpenSslError()));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, pair.key.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{} key {}: {}", what, pair.key, TakeOpenSslError()));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("{} key {} does not match the certificate {}", what, pair.key, pair.cert));
  }
  return Ok();
}

Result<void> UseRoots(SSL_CTX* ctx, const std::string& bundle, const char* what) {
  if (bundle.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return Fail(ErrorCode::kInternal, "cannot load the system's CA store: " + TakeOpenSslError());
    }
    return Ok();
  }
  if (SSL_CTX_load_verify_locations(ctx, bundle.c_str(), nullptr) != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("{} {}: no CA certificate could be read: {}", what, bundle,
                            TakeOpenSslError()));
  }
  return Ok();
}

}  // namespace

Result<std::shared_ptr<const ClientContext>> ClientContext::Create(
    const std::string& service, const config::ServiceTls& tls, const config::Mesh* mesh,
    config::UpstreamProtocol protocol) {
  if (tls.mesh && mesh == nullptr) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("service {}: tls: mesh needs a top-level mesh: block", service));
  }
  std::shared_ptr<ClientContext> context(new ClientContext());
  ERR_clear_error();
  context->ctx_ = SSL_CTX_new(TLS_client_method());
  SSL_CTX* ctx = context->ctx_;
  if (ctx == nullptr) return Fail(ErrorCode::kInternal, "SSL_CTX_new: " + TakeOpenSslError());
  const bool v13 = tls.mesh || tls.min_version == config::TlsVersion::k1_3;
  SSL_CTX_set_min_proto_version(ctx, v13 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  switch (protocol) {
    case config::UpstreamProtocol::kHttp1:
      SSL_CTX_set_alpn_protos(ctx, kAlpnHttp1, sizeof(kAlpnHttp1));
      break;
    case config::UpstreamProtocol::kHttp2:
      SSL_CTX_set_alpn_protos(ctx, kAlpnH2, sizeof(kAlpnH2));
      break;
    case config::UpstreamProtocol::kAuto:
      SSL_CTX_set_alpn_protos(ctx, kAlpnAuto, sizeof(kAlpnAuto));
      break;
  }
  // Renegotiation is an attack surface and no upstream needs it.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);

  if (tls.mesh) {
    if (auto r = UseRoots(ctx, mesh->ca, "mesh.ca"); !r) return tl::unexpected(r.error());
    if (auto r = UseCertificate(ctx, {mesh->cert, mesh->key}, "mesh"); !r) {
      return tl::unexpected(r.error());
    }
    auto domain = TrustDomainOf(mesh->cert);
    if (!domain) return tl::unexpected(domain.error());
    context->expected_identity_ = mesh::ServiceId(*domain, service);
  } else {
    if (auto r = UseRoots(ctx, tls.ca, "ca"); !r) return tl::unexpected(r.error());
    if (tls.client_certificate) {
      if (auto r = UseCertificate(ctx, *tls.client_certificate, "client_certificate"); !r) {
        return tl::unexpected(r.error());
      }
    }
    context->server_name_ = tls.server_name;
    for (const std::string& text : tls.pin_sha256) {
      auto pin = DecodePin(text);
      if (!pin) return tl::unexpected(pin.error());
      context->pins_.push_back(*pin);
    }
  }
  return std::shared_ptr<const ClientContext>(std::move(context));
}

ClientContext::~ClientContext() { SSL_CTX_free(ctx_); }

std::string ClientContext::ServerNameFor(const std::string& endpoint_host) const {
  if (!server_name_.empty()) return server_name_;
  if (config::IsIpLiteral(endpoint_host)) return "";
  return endpoint_host;
}

Result<void> ClientContext::CheckPeer(ssl_st* ssl, const std::string& endpoint_host) const {
  X509* peer = SSL_get0_peer_certificate(ssl);
  if (peer == nullptr) return Fail(ErrorCode::kTlsFailed, "the server sent no certificate");
  if (const long result = SSL_get_verify_result(ssl); result != X509_V_OK) {  // NOLINT
    return Fail(ErrorCode::kTlsFailed, fmt::format("certificate verify failed: {}",
                                                   X509_verify_cert_error_string(result)));
  }
  if (!expected_identity_.empty()) {
    const std::string id = mesh::SpiffeIdOf(peer);
    if (id != expected_identity_) {
      return Fail(ErrorCode::kTlsFailed,
                  fmt::format("the server is {}, not {}", id.empty() ? "no mesh identity" : id,
                              expected_identity_));
    }
    return Ok();
  }
  const std::string name = server_name_.empty() ? endpoint_host : server_name_;
  const bool ip = config::IsIpLiteral(name);
  const int matched = ip ? X509_check_ip_asc(peer, name.c_str(), 0)
                         : X509_check_host(peer, name.data(), name.size(), 0, nullptr);
  if (matched != 1) {
    ERR_clear_error();
    return Fail(ErrorCode::kTlsFailed, fmt::format("the server's certificate does not name {} '{}'",
                                                   ip ? "the address" : "the host", name));
  }
  if (!pins_.empty()) {
    auto digest = SpkiSha256(peer);
    if (!digest) return tl::unexpected(digest.error());
    if (std::find(pins_.begin(), pins_.end(), *digest) == pins_.end()) {
      return Fail(ErrorCode::kTlsFailed, "the server's key matches no pin_sha256");
    }
  }
  return Ok();
}

Task<Result<std::unique_ptr<runtime::Stream>>> ClientContext::Handshake(
    std::unique_ptr<runtime::Stream> lower, const std::string& endpoint_host,
    const std::string& where, Duration timeout) const {
  std::shared_ptr<const ClientContext> self = shared_from_this();
  std::string sni = ServerNameFor(endpoint_host);
  VerifyHook verify = [self, host = endpoint_host](ssl_st* ssl) {
    return self->CheckPeer(ssl, host);
  };
  auto made =
      co_await ClientHandshake(std::move(lower), ctx_, std::move(sni), timeout, std::move(verify));
  if (made) co_return made;
  const Error& error = made.error();
  switch (error.code()) {
    case ErrorCode::kCancelled:
      co_return made;
    case ErrorCode::kDeadlineExceeded:
      co_return Fail(
          ErrorCode::kConnectFailed,
          fmt::format("TLS handshake with {} timed out after {}", where,
                      FormatDuration(std::chrono::ceil<std::chrono::milliseconds>(timeout))));
    default:
      co_return Fail(ErrorCode::kTlsFailed,
                     fmt::format("TLS handshake with {}: {}", where, error.message()));
  }
}

std::vector<std::string> ContextFiles(const config::ServiceTls& tls, const config::Mesh* mesh) {
  std::vector<std::string> files;
  if (tls.mesh) {
    if (mesh != nullptr) files = {mesh->cert, mesh->key, mesh->ca};
    return files;
  }
  if (!tls.ca.empty()) files.push_back(tls.ca);
  if (tls.client_certificate) {
    files.push_back(tls.client_certificate->cert);
    files.push_back(tls.client_certificate->key);
  }
  return files;
}

std::string StampFiles(const std::vector<std::string>& files) {
  std::string stamp;
  for (const std::string& file : files) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      stamp += "-;";
      continue;
    }
    stamp +=
        fmt::format("{}:{}:{}.{};", st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  }
  return stamp;
}

std::shared_ptr<const ClientContext> ClientTls::Current() const {
  std::lock_guard lock(mutex_);
  return context_;
}

std::uint64_t ClientTls::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

void ClientTls::Set(std::shared_ptr<const ClientContext> context) {
  std::lock_guard lock(mutex_);
  context_ = std::move(context);
  ++generation_;
}

Result<void> ClientTlsRegistry::Apply(const config::Config& config) {
  std::lock_guard lock(mutex_);
  // Two phases: every new context is made first, and nothing changes when a service would be
  // left with none (a rejected start or reload must not leave a service on plain TCP).
  struct Change {
    std::string service;
    std::shared_ptr<const ClientContext> context;  // null: it failed, keep the old one
  };
  std::vector<Change> changes;
  std::vector<std::string> failures;
  std::map<std::string, Entry> next;
  for (const auto& [name, service] : config.services) {
    if (!service.tls) continue;
    const config::ServiceTls& settings = *service.tls;
    const config::Mesh* mesh = settings.mesh && config.mesh ? &*config.mesh : nullptr;
    Entry entry;
    if (auto old = services_.find(name); old != services_.end()) entry = old->second;
    const std::string stamp = StampFiles(ContextFiles(settings, mesh));
    const std::optional<config::Mesh> wanted_mesh =
        settings.mesh ? config.mesh : std::optional<config::Mesh>();
    const bool same = entry.tls != nullptr && entry.settings == settings &&
                      entry.protocol == service.protocol && entry.mesh == wanted_mesh;
    const bool failed_before =
        entry.tls != nullptr && entry.failed_stamp == stamp && entry.failed_settings == settings;
    if ((same && entry.stamp == stamp) || failed_before) {
      next.emplace(name, std::move(entry));
      continue;
    }
    auto made = ClientContext::Create(name, settings, mesh, service.protocol);
    if (!made && entry.tls == nullptr) {
      failures.push_back(fmt::format("service {}: {}", name, made.error().message()));
      continue;
    }
    if (made) {
      entry.settings = settings;
      entry.protocol = service.protocol;
      entry.mesh = wanted_mesh;
      entry.stamp = stamp;
      entry.failed_stamp.clear();
      entry.failed_settings.reset();
      changes.push_back({name, std::move(*made)});
    } else {
      // Logged once per state of the files, not every second.
      entry.failed_stamp = stamp;
      entry.failed_settings = settings;
      spdlog::error("upstream {}: new TLS settings not applied, the running ones stay: {}", name,
                    made.error().message());
    }
    next.emplace(name, std::move(entry));
  }
  if (!failures.empty()) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("{}", fmt::join(failures, "\n")));
  }
  for (Change& change : changes) {
    Entry& entry = next.at(change.service);
    const bool fresh = entry.tls == nullptr;
    if (fresh) entry.tls = std::make_shared<ClientTls>();
    const std::string& identity = change.context->expected_identity();
    entry.tls->Set(std::move(change.context));
    if (!fresh)
      spdlog::info("upstream {}: new TLS context (settings or files changed)", change.service);
    if (!identity.empty()) {
      spdlog::info("upstream {}: mutual TLS, the server must be {}", change.service, identity);
    }
  }
  services_ = std::move(next);
  return Ok();
}

std::shared_ptr<ClientTls> ClientTlsRegistry::Find(const std::string& service) const {
  std::lock_guard lock(mutex_);
  auto it = services_.find(service);
  return it == services_.end() ? nullptr : it->second.tls;
}

}  // namespace ferry::tls
