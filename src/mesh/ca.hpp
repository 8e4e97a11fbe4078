// Ferry's small CA for the mesh (`ferry ca`, docs/security.md#ferry-ca): a root certificate
// and key in a directory, and workload certificates signed by it whose one URI SAN is
// spiffe://DOMAIN/service/NAME. Keys are ECDSA P-256.
//
// A CA directory holds ca.pem (the root: the mesh's CA bundle, handed to every node as
// `mesh.ca`), ca.key (mode 0600) and, per issued service, NAME.pem (the leaf only: the bundle
// travels separately, as SPIFFE does it) and NAME.key (mode 0600). The trust domain is read
// back from the root's own URI SAN (spiffe://DOMAIN), so `issue` needs only the directory.
// Files are written to a temporary name and renamed into place, so a node watching them never
// reads half a file. Blocking file I/O: a command-line tool's code, not an event loop's.
#pragma once

#include <chrono>
#include <string>

#include "core/result.hpp"
#include "core/units.hpp"

namespace ferry::mesh {

inline constexpr Duration kDefaultCaTtl = std::chrono::hours(24 * 365 * 10);
inline constexpr Duration kDefaultLeafTtl = std::chrono::hours(24);
// Certificates start this long before they are made, for clocks a little behind the CA's.
inline constexpr Duration kBackdate = std::chrono::minutes(1);

// Creates `dir` (and its parents) if missing and writes a new root there. Fails with
// kAlreadyExists if dir/ca.pem or dir/ca.key exists (nothing is overwritten), kInvalidArgument
// for a bad trust domain or ttl, kIo when a file cannot be written.
Result<void> InitCa(const std::string& dir, const std::string& trust_domain,
                    Duration ttl = kDefaultCaTtl);

struct Issued {
  std::string cert_path;  // DIR/NAME.pem
  std::string key_path;   // DIR/NAME.key
  std::string spiffe_id;  // spiffe://DOMAIN/service/NAME
  std::chrono::system_clock::time_point not_after;
};

// Issues a workload certificate for `service`, valid from now - kBackdate for `ttl` (capped at
// the root's own expiry), replacing DIR/NAME.pem and DIR/NAME.key if they exist. Fails with
// kNotFound when dir holds no CA, kInvalidArgument for a bad service name or ttl, kIo.
Result<Issued> IssueService(const std::string& dir, const std::string& service, Duration ttl);

}  // namespace ferry::mesh
