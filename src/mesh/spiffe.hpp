// SPIFFE IDs, the identities of the mesh: spiffe://DOMAIN/service/NAME, carried by a workload
// certificate as its one URI SAN (the X509-SVID rule). Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

// OpenSSL's certificate type, declared as <openssl/types.h> does so this header stays light.
typedef struct x509_st X509;  // NOLINT(modernize-use-using): must match OpenSSL's typedef

namespace ferry::mesh {

struct SpiffeId {
  std::string trust_domain;  // "example.org"
  std::string path;          // "/service/orders"; "" for the trust domain itself
  bool operator==(const SpiffeId&) const = default;
};

// A trust domain: 1..255 of [a-z0-9._-] (lowercase, as SPIFFE requires).
bool IsValidTrustDomain(std::string_view domain);
// A service name, the last path segment: 1..128 of [A-Za-z0-9._-], not "." or "..".
bool IsValidServiceName(std::string_view name);

// Parses "spiffe://DOMAIN[/SEGMENT...]"; nullopt when it is not a valid SPIFFE ID (another
// scheme, a bad trust domain, empty or dot segments, a query, a fragment or a trailing '/').
std::optional<SpiffeId> ParseSpiffeId(std::string_view uri);

// "spiffe://DOMAIN/service/NAME".
std::string ServiceId(std::string_view trust_domain, std::string_view service);
// "spiffe://DOMAIN".
std::string TrustDomainId(std::string_view trust_domain);
// NAME of spiffe://DOMAIN/service/NAME; "" when `id` is not that shape.
std::string ServiceNameOf(const SpiffeId& id);

// The certificate's SPIFFE ID: the text of its URI SAN when it has exactly one URI SAN and that
// one is a valid SPIFFE ID; "" otherwise (none, several, or not spiffe://).
std::string SpiffeIdOf(const X509* cert);

}  // namespace ferry::mesh
