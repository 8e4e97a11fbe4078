// A node's own workload certificate as its renewer sees it: what the certificate on disk says
// (is it there, does the key fit, when does it end, whom does it name) and whether a
// certificate the CA answered with is the one asked for. Pure functions and blocking file
// reads; thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "core/result.hpp"

namespace ferry::mesh {

struct CertificateInfo {
  std::string spiffe_id;  // its SPIFFE ID ("" when it has none)
  std::string serial;     // hex
  std::chrono::system_clock::time_point not_before;
  std::chrono::system_clock::time_point not_after;
};

// The certificate in `cert_path` (its first PEM certificate) if `key_path` holds its private
// key. kNotFound when a file is missing; kInvalidArgument when a file is not PEM or the key
// does not fit; kIo.
Result<CertificateInfo> ReadWorkloadCertificate(const std::string& cert_path,
                                                const std::string& key_path);

// The trust domain of the first certificate in a CA bundle, a Ferry root (URI SAN
// spiffe://DOMAIN). kInvalidArgument when it has none.
Result<std::string> TrustDomainOfBundle(const std::string& ca_path);

// Checks a certificate the CA answered: PEM, for `key_pem`'s key, naming exactly `spiffe_id`,
// and verifying against the bundle in `ca_path` now. kInvalidArgument saying what is wrong.
Result<CertificateInfo> CheckIssuedCertificate(const std::string& cert_pem,
                                               const std::string& key_pem,
                                               const std::string& spiffe_id,
                                               const std::string& ca_path);

}  // namespace ferry::mesh
