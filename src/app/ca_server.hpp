// `ferry ca serve`: the mesh CA as an HTTPS service, so nodes renew their certificates
// themselves (docs/security.md#ferry-ca-serve). One endpoint:
//
//   POST /v1/sign   body: a PEM CSR (mesh/csr.hpp)   200: the certificate, PEM
//
// A caller is authenticated by its current mesh certificate (TLS client certificate, verified
// against the CA's own root): then the CSR must ask for exactly that certificate's identity.
// A caller without one presents a one-time bootstrap token (`Authorization: Bearer TOKEN`, made
// by `ferry ca token` for one service): then the CSR must ask for that service, and the token
// is spent (deleted, durably) before the certificate is returned. Refusals use the JSON error
// shape of every Ferry API (server/exchange.hpp ErrorJson) with these codes:
//   400 csr_invalid          not a PEM CSR, a bad signature or key, not one SPIFFE ID of the CA's
//   401 token_missing        no client certificate and no bearer token (WWW-Authenticate: Bearer)
//   401 token_invalid        the token is unknown or already spent
//   401 token_expired        the token's time is over (it is deleted)
//   403 token_wrong_service  the token is for another service (it stays unspent)
//   403 identity_mismatch    the CSR asks for another identity than the client certificate's
//   404 not_found, 405 method_not_allowed, 500 internal (and the server's own 400/408/413)
// Threading: one event loop on the calling thread; signing and the token files' fsync are
// blocking calls on it (a CA serves a few requests per node per day).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/units.hpp"
#include "mesh/ca.hpp"
#include "mesh/token_store.hpp"
#include "server/exchange.hpp"

namespace ferry::app {

struct CaServeOptions {
  std::string dir;                       // the CA directory (`ferry ca init`)
  std::string listen;                    // "127.0.0.1:8443"; port 0: the kernel picks one (logged)
  Duration ttl = mesh::kDefaultLeafTtl;  // of the certificates it signs
  std::string cert;                      // the server's own certificate and key; "" = the CA issues
  std::string key;                       // itself one (DIR/serve.pem, DIR/serve.key)
  std::vector<std::string> names;        // extra SAN DNS names or IPs of the issued server cert
};

// Runs until SIGTERM or SIGINT (then drains for up to 5 s); returns the exit code: 0 after a
// clean stop, 1 when the CA, the certificate or the address cannot be used.
int RunCaServer(const CaServeOptions& options);

// The decisions of /v1/sign as plain code, apart from the HTTP server (unit tests call it).
class CaService final : public server::Handler {
 public:
  struct Answer {
    int status = 200;
    std::string code;  // the error code; "" for a certificate
    std::string body;  // the certificate PEM or the error JSON
  };

  CaService(mesh::Authority ca, Duration ttl);

  // `peer_identity`: the verified client certificate's SPIFFE ID, "" without one;
  // `authorization`: the Authorization header's value, "" without one.
  Answer Sign(std::string_view csr_pem, const std::string& peer_identity,
              std::string_view authorization);

  Task<void> Serve(server::Request& request, server::Response& response) override;

  const mesh::Authority& authority() const { return ca_; }
  const mesh::TokenStore& tokens() const { return tokens_; }

 private:
  mesh::Authority ca_;
  mesh::TokenStore tokens_;
  Duration ttl_;
};

}  // namespace ferry::app
