// Parsing of "host:port" and "[v6]:port" addresses as written in the config. Pure functions;
// thread-safe. Errors are kInvalidArgument with a message that names the problem.
#pragma once

#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/result.hpp"

namespace ferry::config {

enum class AddressUse {
  kListener,  // literal IPv4/IPv6 only; port 0-65535 (0: the kernel picks one)
  kEndpoint,  // literal IP or DNS name; port 1-65535
};

Result<Address> ParseAddress(std::string_view text, AddressUse use);
// "10.0.0.0/8", "fd00::/8", or a bare address (a /32 or /128). Host bits are cleared.
Result<IpNetwork> ParseIpNetwork(std::string_view text);

// True for a literal IPv4 ("10.0.0.1") or IPv6 ("::1", no brackets) address.
bool IsIpLiteral(std::string_view host);
// True for a DNS name: dot-separated labels of letters, digits, '-' and '_', not all-numeric.
bool IsDnsName(std::string_view host);
// The host in a canonical spelling (lowercase; IPv6 compressed), to compare addresses.
std::string CanonicalHost(std::string_view host);

}  // namespace ferry::config
