// Upstream TLS (a service's `tls:`, docs/security.md#upstream-tls): what Ferry verifies and
// presents when it calls a service over TLS, and the handshake that does it.
//
// ClientContext: one SSL_CTX per service, built from config::ServiceTls (a CA bundle with any
// number of roots, else the system's store; TLS 1.2+ or 1.3 only; ALPN http/1.1; an optional
// client certificate) or, for `tls: mesh`, from the node's mesh block (the mesh certificate as
// client certificate, the mesh CA as the only root). After the chain verifies, the server
// must also be who the config says: its SPIFFE ID exactly spiffe://DOMAIN/service/<service>
// for the mesh (DOMAIN: the trust domain of the node's own mesh certificate); else the name
// (server_name, or the endpoint's host: DNS names against the SAN DNS names, IP literals
// against the SAN IPs); and, with pin_sha256, its key one of the pins. Immutable once made.
//
// ClientTls: a service's current context, node-wide, shared by every cluster that calls the
// service (the proxy's workers, bus push, health checks). The node swaps in a new context when
// the config or one of the files it was built from changes (ClientTlsRegistry::Apply, every
// second); connections made from then on use it, and pooled connections made with an older
// one are not reused (generation()).
// Thread safety: ClientContext is immutable; ClientTls and ClientTlsRegistry lock inside.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"
#include "core/units.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"

struct ssl_ctx_st;
struct ssl_st;

namespace ferry::tls {

class ClientContext : public std::enable_shared_from_this<ClientContext> {
 public:
  // `service`: the service's name (the mesh identity the server must have). `mesh`: the node's
  // mesh block, needed when tls.mesh. Errors (kInvalidArgument, kNotFound,
  // kFailedPrecondition) name the file and what is wrong with it.
  // `protocol`: what ALPN offers (http1: http/1.1; http2: h2; auto: h2 and http/1.1).
  static Result<std::shared_ptr<const ClientContext>> Create(
      const std::string& service, const config::ServiceTls& tls, const config::Mesh* mesh,
      config::UpstreamProtocol protocol = config::UpstreamProtocol::kHttp1);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

  // The TLS handshake over `lower`, a new connection to `endpoint_host` (the configured host:
  // a DNS name or an IP literal; `where` names the endpoint in messages), within `timeout`.
  // Errors: kTlsFailed (the handshake failed or the server is not who it must be: the message
  // says why), kConnectFailed (it timed out), kCancelled.
  // The strings must outlive the call (the caller's named values, as coroutines take them).
  Task<Result<std::unique_ptr<runtime::Stream>>> Handshake(std::unique_ptr<runtime::Stream> lower,
                                                           const std::string& endpoint_host,
                                                           const std::string& where,
                                                           Duration timeout) const;

  // The SNI sent to an endpoint: server_name, else the endpoint's host when it is a DNS name
  // ("" for an IP literal: RFC 6066 has no SNI for addresses).
  std::string ServerNameFor(const std::string& endpoint_host) const;
  // Ok if the verified peer of `ssl` is the server this context expects at `endpoint_host`.
  Result<void> CheckPeer(ssl_st* ssl, const std::string& endpoint_host) const;
  // spiffe://DOMAIN/service/NAME for `tls: mesh`; "" otherwise.
  const std::string& expected_identity() const { return expected_identity_; }
  ssl_ctx_st* native_handle() const { return ctx_; }

 private:
  ClientContext() = default;
  ssl_ctx_st* ctx_ = nullptr;
  std::string server_name_;
  std::string expected_identity_;
  std::vector<std::array<unsigned char, 32>> pins_;
};

// The files a service's context is read from, with their identity on disk (inode, size,
// mtime), to notice a change: "" when none changed since `stamp` was taken.
std::vector<std::string> ContextFiles(const config::ServiceTls& tls, const config::Mesh* mesh);
std::string StampFiles(const std::vector<std::string>& files);

class ClientTls {
 public:
  // The context new connections use (never null once Set).
  std::shared_ptr<const ClientContext> Current() const;
  // Bumped by every Set: a pooled connection made at an older generation is not reused.
  std::uint64_t generation() const;
  void Set(std::shared_ptr<const ClientContext> context);

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const ClientContext> context_;
  std::uint64_t generation_ = 0;
};

// The node's ClientTls per service with a `tls:` block, kept across reloads.
class ClientTlsRegistry {
 public:
  // Makes or updates the contexts of `config`'s services: a service whose settings or files
  // (mesh files for `tls: mesh`) changed since the last Apply gets a new context; one whose
  // new context cannot be made keeps its old one (logged once); services without `tls:` are
  // dropped. Fails, changing nothing, when a service would have no context at all (the node
  // refuses to start, or the reload). Blocking file reads: the main thread's, not a worker's.
  Result<void> Apply(const config::Config& config);
  // The service's, or null when it has no `tls:` (plain TCP).
  std::shared_ptr<ClientTls> Find(const std::string& service) const;

 private:
  struct Entry {
    std::shared_ptr<ClientTls> tls;
    config::ServiceTls settings;
    config::UpstreamProtocol protocol = config::UpstreamProtocol::kHttp1;  // ALPN offered
    std::optional<config::Mesh> mesh;
    std::string stamp;         // StampFiles of the files it was made from
    std::string failed_stamp;  // the files' stamp when a new context last failed (not retried
                               // until they or the settings change again)
    std::optional<config::ServiceTls> failed_settings;
  };
  mutable std::mutex mutex_;
  std::map<std::string, Entry> services_;
};

}  // namespace ferry::tls
