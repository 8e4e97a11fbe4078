#include "upstream/resolver.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

namespace ferry::upstream {

bool IsIpLiteral(const std::string& host) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

Result<std::vector<std::string>> SystemResolver::Resolve(const std::string& host) {
  if (host.empty()) return Fail(ErrorCode::kInvalidArgument, "empty host name");
  if (IsIpLiteral(host)) return std::vector<std::string>{host};

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    const ErrorCode code =
        rc == EAI_MEMORY ? ErrorCode::kResourceExhausted : ErrorCode::kUnavailable;
    return Fail(code, "resolving '" + host + "': " + gai_strerror(rc));
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, &freeaddrinfo);

  std::vector<std::string> addresses;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    // getnameinfo rather than inet_ntop: it keeps the scope of link-local IPv6 ("fe80::1%eth0").
    char text[NI_MAXHOST];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, text, sizeof(text), nullptr, 0, NI_NUMERICHOST) !=
        0) {
      continue;
    }
    if (std::find(addresses.begin(), addresses.end(), text) == addresses.end()) {
      addresses.emplace_back(text);
    }
  }
  if (addresses.empty()) {
    return Fail(ErrorCode::kUnavailable, "resolving '" + host + "': no IPv4 or IPv6 address");
  }
  return addresses;
}

Result<std::vector<std::string>> StaticResolver::Resolve(const std::string& host) {
  if (host.empty()) return Fail(ErrorCode::kInvalidArgument, "empty host name");
  if (IsIpLiteral(host)) return std::vector<std::string>{host};
  const auto it = table_.find(host);
  if (it == table_.end() || it->second.empty()) {
    return Fail(ErrorCode::kUnavailable, "resolving '" + host + "': unknown name");
  }
  std::vector<std::string> addresses;
  for (const auto& address : it->second) {
    if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
      addresses.push_back(address);
    }
  }
  return addresses;
}

Result<std::vector<std::string>> LastGoodResolver::Resolve(const std::string& host) {
  auto answer = inner_->Resolve(host);
  std::lock_guard lock(mu_);
  if (answer) {
    last_good_[host] = *answer;
    return answer;
  }
  const auto known = last_good_.find(host);
  if (answer.error().code() != ErrorCode::kUnavailable || known == last_good_.end()) return answer;
  spdlog::warn("{}; keeping its last addresses", answer.error().message());
  return known->second;
}

}  // namespace ferry::upstream
