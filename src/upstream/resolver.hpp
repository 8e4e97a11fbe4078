// Name resolution for upstream endpoints: a host name to the IP addresses behind it.
// Blocking: SystemResolver calls getaddrinfo, which can take seconds; callers run it off the
// event loop (a resolver thread) and hand the results to workers as a new endpoint snapshot.
// Thread safety: SystemResolver is stateless and safe from any thread; StaticResolver is safe
// for concurrent Resolve calls only while nobody calls Set.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/result.hpp"

namespace ferry::upstream {

class Resolver {
 public:
  virtual ~Resolver() = default;
  // The addresses of host as numeric strings ("10.0.0.7", "::1"), without duplicates, in the
  // order the source prefers. A literal IPv4 or IPv6 address comes back as-is, unresolved.
  // Errors: kInvalidArgument for an empty host, kUnavailable when the name does not resolve
  // (unknown name, no answer, DNS unreachable: all worth trying again later).
  virtual Result<std::vector<std::string>> Resolve(const std::string& host) = 0;
};

// getaddrinfo with AF_UNSPEC and SOCK_STREAM: both families, /etc/hosts and DNS as the
// system's nsswitch.conf says. No AI_ADDRCONFIG: it hides "localhost" on loopback-only hosts.
class SystemResolver final : public Resolver {
 public:
  Result<std::vector<std::string>> Resolve(const std::string& host) override;
};

// A fixed table, for tests and for configs that pin names. Unknown names fail like an
// unknown DNS name (kUnavailable); literal addresses come back as-is.
class StaticResolver final : public Resolver {
 public:
  using Table = std::map<std::string, std::vector<std::string>>;  // host -> addresses

  StaticResolver() = default;
  explicit StaticResolver(Table table) : table_(std::move(table)) {}

  // Adds or replaces a name; an empty list makes the name resolve to nothing (kUnavailable).
  void Set(const std::string& host, std::vector<std::string> addresses) {
    table_[host] = std::move(addresses);
  }

  Result<std::vector<std::string>> Resolve(const std::string& host) override;

 private:
  Table table_;
};

// True if host is a literal IPv4 or IPv6 address (no brackets, no port).
bool IsIpLiteral(const std::string& host);

}  // namespace ferry::upstream
