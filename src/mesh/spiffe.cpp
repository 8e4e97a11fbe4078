#include "mesh/spiffe.hpp"

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace ferry::mesh {
namespace {

constexpr std::string_view kScheme = "spiffe://";
constexpr std::string_view kServicePrefix = "/service/";

bool IsDomainChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
}
bool IsSegmentChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_';
}
bool IsValidSegment(std::string_view segment) {
  if (segment.empty() || segment == "." || segment == "..") return false;
  for (char c : segment) {
    if (!IsSegmentChar(c)) return false;
  }
  return true;
}

}  // namespace

bool IsValidTrustDomain(std::string_view domain) {
  if (domain.empty() || domain.size() > 255) return false;
  for (char c : domain) {
    if (!IsDomainChar(c)) return false;
  }
  return true;
}

bool IsValidServiceName(std::string_view name) {
  return name.size() <= 128 && IsValidSegment(name);
}

std::optional<SpiffeId> ParseSpiffeId(std::string_view uri) {
  if (uri.size() > 2048 || !uri.starts_with(kScheme)) return std::nullopt;
  uri.remove_prefix(kScheme.size());
  std::size_t slash = uri.find('/');
  SpiffeId id;
  id.trust_domain = std::string(uri.substr(0, slash));
  if (!IsValidTrustDomain(id.trust_domain)) return std::nullopt;
  if (slash == std::string_view::npos) return id;
  std::string_view path = uri.substr(slash);
  // Every segment after a '/' must be valid: this refuses "//", a trailing '/', dot segments,
  // and '?', '#' or '%' anywhere.
  std::string_view rest = path;
  while (!rest.empty()) {
    rest.remove_prefix(1);  // the '/'
    std::size_t next = rest.find('/');
    if (!IsValidSegment(rest.substr(0, next))) return std::nullopt;
    rest = next == std::string_view::npos ? std::string_view() : rest.substr(next);
  }
  id.path = std::string(path);
  return id;
}

std::string ServiceId(std::string_view trust_domain, std::string_view service) {
  std::string id(kScheme);
  id.append(trust_domain).append(kServicePrefix).append(service);
  return id;
}

std::string TrustDomainId(std::string_view trust_domain) {
  return std::string(kScheme).append(trust_domain);
}

std::string ServiceNameOf(const SpiffeId& id) {
  std::string_view path = id.path;
  if (!path.starts_with(kServicePrefix)) return "";
  path.remove_prefix(kServicePrefix.size());
  if (path.find('/') != std::string_view::npos) return "";
  return std::string(path);
}

std::string SpiffeIdOf(const X509* cert) {
  if (cert == nullptr) return "";
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return "";
  std::unique_ptr<GENERAL_NAMES, void (*)(GENERAL_NAMES*)> owned(names, GENERAL_NAMES_free);
  std::string found;
  int uris = 0;
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    if (name->type != GEN_URI) continue;
    ++uris;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    found.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                 static_cast<std::size_t>(ASN1_STRING_length(uri)));
  }
  if (uris != 1 || !ParseSpiffeId(found)) return "";
  return found;
}

}  // namespace ferry::mesh
