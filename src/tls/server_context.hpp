// ServerContext: the OpenSSL context of one TLS listener, built from its config::ListenerTls
// (and the node's config::Mesh for `tls: mesh`): TLS 1.2 and 1.3 (or 1.3 only), ECDHE + AEAD
// suites for 1.2 unless configured, ALPN http/1.1 (and h2 first when asked: Alpn), certificates
// picked by SNI (the SAN DNS names of each, wildcards included; else the first), session tickets
// (keys made in memory) and a server session cache, client certificates verified against client_ca,
// and for the mesh the node's mesh certificate with client certificates required, verified against
// the mesh CA and limited to the trust domain of the node's own SPIFFE ID.
//
// Immutable once built and shared by every worker (OpenSSL's SSL_CTX is thread-safe for
// handshakes). A reload builds a new one for new handshakes; open connections keep theirs.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"
#include "core/units.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"

struct ssl_ctx_st;

namespace ferry::tls {

// With a client_ca: must every client present a certificate, or may it come without one (a
// certificate it presents must still verify)? `ferry ca serve` admits both: a node renewing
// with its certificate and one bootstrapping with a token.
enum class ClientCertificates { kRequired, kOptional };

// What ALPN offers: HTTP/1.1 only, or h2 first and http/1.1 (a listener with HTTP/2 on).
enum class Alpn { kHttp11, kH2AndHttp11 };

class ServerContext {
 public:
  // Loads the certificate, key and CA files (a key file readable by group or others is
  // refused). Errors name the file: kNotFound, kFailedPrecondition, kInvalidArgument.
  // `client_certificates` applies to tls.client_ca (the mesh always requires one).
  static Result<std::shared_ptr<const ServerContext>> Create(
      const config::ListenerTls& tls, const std::optional<config::Mesh>& mesh,
      ClientCertificates client_certificates = ClientCertificates::kRequired,
      Alpn alpn = Alpn::kHttp11);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;

  ssl_ctx_st* native_handle() const;
  // The files it was built from (certificates, keys, CAs): a change to one calls for a new one.
  const std::vector<std::string>& files() const;

  struct Impl;

 private:
  explicit ServerContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The files `tls` (with `mesh` for `tls: mesh`) reads, without loading them.
std::vector<std::string> FilesOf(const config::ListenerTls& tls,
                                 const std::optional<config::Mesh>& mesh);

// A server handshake for a listener. `ctx` must live until it completes (the connection keeps
// its own reference to the SSL_CTX afterwards).
Task<Result<std::unique_ptr<runtime::Stream>>> ServerHandshake(
    std::unique_ptr<runtime::Stream> lower, const ServerContext& ctx, Duration timeout);

}  // namespace ferry::tls
