#include "tls/server_context.hpp"

#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "mesh/spiffe.hpp"
#include "tls/private_key_file.hpp"
#include "tls/tls_stream.hpp"

namespace ferry::tls {

namespace {

// TLS 1.2 suites unless `ciphers` says otherwise: forward secrecy and AEAD only.
constexpr const char* kDefaultCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
// Server-side session cache entries (per context, shared by the workers).
constexpr long kSessionCacheSize = 20000;

std::string OpenSslReason() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    if (!out.empty()) out.append("; ");
    const char* reason = ERR_reason_error_string(e);
    out.append(reason != nullptr ? reason : "unknown error");
  }
  return out.empty() ? "unknown error" : out;
}

struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct ChainFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};

Result<std::string> ReadFile(const std::string& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorCode::kNotFound,
                fmt::format("{} {}: cannot open: {}", what, path, std::strerror(errno)));
  }
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

// One certificate (leaf, chain, key) a handshake may present.
struct Certificate {
  std::unique_ptr<X509, X509Free> leaf;
  std::unique_ptr<STACK_OF(X509), ChainFree> chain;
  std::unique_ptr<EVP_PKEY, KeyFree> key;
};

struct ServerContext::Impl {
  SSL_CTX* ctx = nullptr;
  std::vector<Certificate> certificates;  // [0] is the context's own; SNI may pick another
  std::vector<std::string> files;
  std::string trust_domain_prefix;  // mesh: "spiffe://DOMAIN/"; "" otherwise
  ~Impl() {
    if (ctx != nullptr) SSL_CTX_free(ctx);
  }
};

namespace {

Result<Certificate> LoadCertificate(const config::TlsCertificate& files) {
  if (Result<void> r = CheckPrivateKeyFile(files.key); !r) return tl::unexpected(r.error());
  auto cert_pem = ReadFile(files.cert, "certificate");
  if (!cert_pem) return tl::unexpected(cert_pem.error());
  auto key_pem = ReadFile(files.key, "private key");
  if (!key_pem) return tl::unexpected(key_pem.error());
  Certificate out;
  ERR_clear_error();
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size())));
  out.leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!out.leaf) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("certificate {}: no PEM certificate ({})",
                                                         files.cert, OpenSslReason()));
  }
  out.chain.reset(sk_X509_new_null());
  while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(out.chain.get(), extra);
  }
  ERR_clear_error();  // the end of the file
  std::unique_ptr<BIO, BioFree> key_bio(
      BIO_new_mem_buf(key_pem->data(), static_cast<int>(key_pem->size())));
  out.key.reset(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(key_pem->data(), key_pem->size());
  if (!out.key) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("private key {}: no PEM private key ({})", files.key, OpenSslReason()));
  }
  if (X509_check_private_key(out.leaf.get(), out.key.get()) != 1) {
    ERR_clear_error();
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("private key {} does not belong to certificate {}", files.key, files.cert));
  }
  return out;
}

Result<void> UseCertificate(SSL_CTX* ctx, const Certificate& c, const std::string& name) {
  if (SSL_CTX_use_cert_and_key(ctx, c.leaf.get(), c.key.get(), c.chain.get(), 1) != 1) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("certificate {}: {}", name, OpenSslReason()));
  }
  return Ok();
}

// Picks the certificate whose SAN names the client's SNI (several certificates only).
int PickCertificate(SSL* ssl, void* arg) {
  const auto* impl = static_cast<const ServerContext::Impl*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return 1;
  const std::size_t len = std::strlen(name);
  for (std::size_t i = 0; i < impl->certificates.size(); ++i) {
    const Certificate& c = impl->certificates[i];
    if (X509_check_host(c.leaf.get(), name, len, 0, nullptr) != 1) continue;
    if (i == 0) return 1;  // the context's own
    return SSL_use_cert_and_key(ssl, c.leaf.get(), c.key.get(), c.chain.get(), 1) == 1 ? 1 : 0;
  }
  return 1;
}

// `arg` non-null: h2 is offered too, first (the server's order wins).
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void* arg) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  static const unsigned char kH2AndHttp11[] = {2,   'h', '2', 8,   'h', 't',
                                               't', 'p', '/', '1', '.', '1'};
  const bool h2 = arg != nullptr;
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, h2 ? kH2AndHttp11 : kHttp11,
                            h2 ? sizeof(kH2AndHttp11) : sizeof(kHttp11), in,
                            inlen) != OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_NOACK;  // no ALPN in the answer; the client decides
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Mesh: the chain must verify against the mesh CA and the leaf's SPIFFE ID must be in the
// node's trust domain.
int VerifyMeshClient(X509_STORE_CTX* store, void* arg) {
  const auto* impl = static_cast<const ServerContext::Impl*>(arg);
  if (X509_verify_cert(store) != 1) return 0;
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  const std::string id = mesh::SpiffeIdOf(leaf);
  if (id.empty() || !id.starts_with(impl->trust_domain_prefix)) {
    X509_STORE_CTX_set_error(store, X509_V_ERR_PERMITTED_VIOLATION);
    return 0;
  }
  return 1;
}

Result<void> LoadCa(SSL_CTX* ctx, const std::string& path, std::string_view what) {
  if (auto pem = ReadFile(path, what); !pem) return tl::unexpected(pem.error());
  ERR_clear_error();
  if (SSL_CTX_load_verify_locations(ctx, path.c_str(), nullptr) != 1) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("{} {}: {}", what, path, OpenSslReason()));
  }
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(path.c_str());
  if (names != nullptr) SSL_CTX_set_client_CA_list(ctx, names);
  ERR_clear_error();
  return Ok();
}

}  // namespace

std::vector<std::string> FilesOf(const config::ListenerTls& tls,
                                 const std::optional<config::Mesh>& mesh) {
  std::vector<std::string> out;
  if (tls.mesh) {
    if (mesh) out = {mesh->cert, mesh->key, mesh->ca};
    return out;
  }
  for (const config::TlsCertificate& c : tls.certificates) {
    out.push_back(c.cert);
    out.push_back(c.key);
  }
  if (!tls.client_ca.empty()) out.push_back(tls.client_ca);
  return out;
}

Result<std::shared_ptr<const ServerContext>> ServerContext::Create(
    const config::ListenerTls& tls, const std::optional<config::Mesh>& mesh,
    ClientCertificates client_certificates, Alpn alpn) {
  auto impl = std::make_unique<Impl>();
  impl->files = FilesOf(tls, mesh);
  std::vector<config::TlsCertificate> certificates = tls.certificates;
  std::string client_ca = tls.client_ca;
  if (tls.mesh) {
    if (!mesh) return Fail(ErrorCode::kInvalidArgument, "tls: mesh needs a mesh: block");
    certificates = {config::TlsCertificate{mesh->cert, mesh->key}};
    client_ca = mesh->ca;
  }
  if (certificates.empty()) return Fail(ErrorCode::kInvalidArgument, "tls needs a certificate");

  ERR_clear_error();
  impl->ctx = SSL_CTX_new(TLS_server_method());
  if (impl->ctx == nullptr) return Fail(ErrorCode::kInternal, "SSL_CTX_new: " + OpenSslReason());
  SSL_CTX* ctx = impl->ctx;
  SSL_CTX_set_min_proto_version(
      ctx, tls.min_version == config::TlsVersion::k1_3 ? TLS1_3_VERSION : TLS1_2_VERSION);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  const std::string ciphers = tls.ciphers.empty() ? kDefaultCiphers : tls.ciphers;
  if (SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    return Fail(
        ErrorCode::kInvalidArgument,
        fmt::format("ciphers '{}': no usable TLS 1.2 cipher ({})", ciphers, OpenSslReason()));
  }
  static int h2_marker = 0;  // any non-null argument: offer h2
  SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, alpn == Alpn::kH2AndHttp11 ? &h2_marker : nullptr);

  for (const config::TlsCertificate& files : certificates) {
    auto loaded = LoadCertificate(files);
    if (!loaded) return tl::unexpected(loaded.error());
    impl->certificates.push_back(std::move(*loaded));
  }
  if (auto r = UseCertificate(ctx, impl->certificates[0], certificates[0].cert); !r) {
    return tl::unexpected(r.error());
  }
  if (impl->certificates.size() > 1) SSL_CTX_set_cert_cb(ctx, PickCertificate, impl.get());

  if (tls.mesh) {
    const std::string own = mesh::SpiffeIdOf(impl->certificates[0].leaf.get());
    const auto slash = own.find('/', std::string_view("spiffe://").size());
    if (own.empty() || slash == std::string::npos) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("mesh certificate {}: no spiffe://DOMAIN/... URI SAN", mesh->cert));
    }
    impl->trust_domain_prefix = own.substr(0, slash + 1);
    if (auto r = LoadCa(ctx, client_ca, "mesh CA"); !r) return tl::unexpected(r.error());
    SSL_CTX_set_cert_verify_callback(ctx, VerifyMeshClient, impl.get());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  } else if (!client_ca.empty()) {
    if (auto r = LoadCa(ctx, client_ca, "client_ca"); !r) return tl::unexpected(r.error());
    const bool required = client_certificates == ClientCertificates::kRequired;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       nullptr);
  }

  static const unsigned char kSessionContext[] = "ferry";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  if (tls.session_resumption) {
    // Ticket keys: OpenSSL makes random ones per context, in memory only; a new context (a
    // reload of the files) makes new ones.
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(ctx, kSessionCacheSize);
  } else {
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx, 0);
  }
  return std::shared_ptr<const ServerContext>(new ServerContext(std::move(impl)));
}

ServerContext::ServerContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerContext::~ServerContext() = default;

ssl_ctx_st* ServerContext::native_handle() const { return impl_->ctx; }
const std::vector<std::string>& ServerContext::files() const { return impl_->files; }

Task<Result<std::unique_ptr<runtime::Stream>>> ServerHandshake(
    std::unique_ptr<runtime::Stream> lower, const ServerContext& ctx, Duration timeout) {
  return ServerHandshake(std::move(lower), ctx.native_handle(), timeout);
}

}  // namespace ferry::tls
