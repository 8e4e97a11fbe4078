// Certificate signing requests: how a node asks `ferry ca serve` for its certificate. The node
// makes a new key and a CSR naming the identity it asks for (MakeKeyAndCsr); the CA checks the
// CSR (CheckCsr) and signs a leaf for its key. The CA takes nothing from a CSR but its key and
// that identity: names, other SANs, extensions and the like are ignored, never copied.
// Pure functions over OpenSSL's libcrypto; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "core/result.hpp"
#include "mesh/ca.hpp"

namespace ferry::mesh {

// Larger PEM text is not a CSR of ours (a P-256 CSR is ~500 bytes; RSA 4096 ~1.7 KiB).
inline constexpr std::size_t kMaxCsrBytes = 16 * 1024;

struct KeyAndCsr {
  std::string key_pem;  // PKCS#8, unencrypted: the caller writes it with mode 0600
  std::string csr_pem;
};

// A new ECDSA P-256 key and a CSR signed with it whose one URI SAN is `spiffe_id` (CN: the
// identity's service name). kInvalidArgument when spiffe_id is not spiffe://DOMAIN/service/NAME.
Result<KeyAndCsr> MakeKeyAndCsr(const std::string& spiffe_id);

struct CheckedCsr {
  std::string spiffe_id;                 // spiffe://DOMAIN/service/NAME
  std::string service;                   // NAME
  std::shared_ptr<EVP_PKEY> public_key;  // proven: the CSR is signed with its private half
};

// Reads a PEM CSR and checks it: its signature (proof that the sender holds the key), the key
// (ECDSA P-256 or P-384, or RSA of 2048 bits or more), and exactly one URI SAN, a SPIFFE ID
// spiffe://<trust_domain>/service/NAME. kInvalidArgument, with a message that says why.
Result<CheckedCsr> CheckCsr(std::string_view pem, std::string_view trust_domain);

}  // namespace ferry::mesh
