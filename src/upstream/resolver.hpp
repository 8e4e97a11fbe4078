// Name resolution for upstream endpoints: a host name to the IP addresses behind it.
// Blocking: SystemResolver calls getaddrinfo, which can take seconds; callers run it off the
// event loop (a resolver thread) and hand the results to workers as a new endpoint snapshot.
// Thread safety: SystemResolver is stateless and safe from any thread; StaticResolver is safe
// for concurrent Resolve calls only while nobody calls Set; LastGoodResolver is safe from any
// thread if the resolver it wraps is.
#pragma once

#include <map>
#include <memory>
#include <mutex>
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

// Wraps a resolver and remembers each name's last answer: when the name fails to resolve later
// (kUnavailable: a DNS hiccup, an unreachable server), the last answer comes back instead, with
// a warning, so a flaky DNS server does not take a service's endpoints away — what Envoy's
// strict DNS clusters do too. A name that never resolved still fails.
class LastGoodResolver final : public Resolver {
 public:
  explicit LastGoodResolver(std::shared_ptr<Resolver> inner) : inner_(std::move(inner)) {}
  Result<std::vector<std::string>> Resolve(const std::string& host) override;

 private:
  std::shared_ptr<Resolver> inner_;
  std::mutex mu_;
  std::map<std::string, std::vector<std::string>> last_good_;  // host -> its last answer
};

// True if host is a literal IPv4 or IPv6 address (no brackets, no port).
bool IsIpLiteral(const std::string& host);

}  // namespace ferry::upstream
