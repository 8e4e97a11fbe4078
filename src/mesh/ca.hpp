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
// `Authority` is the loaded root, for `ferry ca serve` to sign with: immutable once loaded,
// so one may sign from several threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/result.hpp"
#include "core/units.hpp"

// OpenSSL's key type, declared as <openssl/types.h> does so this header stays light.
typedef struct evp_pkey_st EVP_PKEY;  // NOLINT(modernize-use-using): must match OpenSSL's

namespace ferry::mesh {

inline constexpr Duration kDefaultCaTtl = std::chrono::hours(24 * 365 * 10);
inline constexpr Duration kDefaultLeafTtl = std::chrono::hours(24);
// Certificates start up to this long before they are made, for clocks a little behind the
// CA's; a short-lived leaf by a quarter of its ttl at most (BackdateFor), so that most of its
// life lies ahead of it and a renewer's "renew at 2/3 of the life" stays in the future.
inline constexpr Duration kBackdate = std::chrono::minutes(1);
Duration BackdateFor(Duration ttl);

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

// Issues a workload certificate for `service`, valid from now - BackdateFor(ttl) for `ttl`
// (capped at the root's own expiry), replacing DIR/NAME.pem and DIR/NAME.key if they exist.
// Fails with kNotFound when dir holds no CA, kInvalidArgument for a bad service name or ttl,
// kIo.
Result<Issued> IssueService(const std::string& dir, const std::string& service, Duration ttl);

// What a leaf certificate says besides its key.
struct LeafSpec {
  std::string common_name;                // the subject's CN (O is the trust domain)
  std::string spiffe_id;                  // the one URI SAN; "" for none
  std::vector<std::string> dns_names;     // SAN DNS names
  std::vector<std::string> ip_addresses;  // SAN IP addresses
  bool client_auth = true;                // EKU clientAuth beside serverAuth
  Duration ttl = kDefaultLeafTtl;
};

struct SignedLeaf {
  std::string cert_pem;
  std::string serial;  // hex, as `openssl x509 -serial` prints it
  std::chrono::system_clock::time_point not_after;
};

// A loaded CA (its root and key), to sign leaves with.
class Authority {
 public:
  // Reads DIR/ca.pem and DIR/ca.key. kNotFound when dir holds no CA, kInvalidArgument when the
  // files are not a Ferry root and its key, kIo.
  static Result<Authority> Load(const std::string& dir);
  Authority(Authority&&) noexcept;
  Authority& operator=(Authority&&) noexcept;
  ~Authority();

  const std::string& dir() const;
  const std::string& trust_domain() const;
  // Signs a leaf for `public_key` (the key stays the caller's), valid from now -
  // BackdateFor(ttl) for spec.ttl, capped at the root's expiry. kInvalidArgument for a bad ttl
  // or SAN, kFailedPrecondition when the root has expired, kInternal.
  Result<SignedLeaf> Sign(const LeafSpec& spec, EVP_PKEY* public_key) const;

 private:
  struct Impl;
  explicit Authority(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::mesh
