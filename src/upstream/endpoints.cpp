#include "upstream/endpoints.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ferry::upstream {

ResolvedHosts ResolveHosts(Resolver& resolver, const std::vector<config::Address>& addresses) {
  ResolvedHosts out;
  out.reserve(addresses.size());
  for (const config::Address& a : addresses) {
    auto ips = resolver.Resolve(a.host);
    if (ips) {
      out.emplace_back(std::move(*ips));
    } else {
      spdlog::warn("upstream: cannot resolve {}: {}", a.host, ips.error().message());
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

std::vector<ResolvedAddress> CombineResolved(const std::vector<config::Address>& addresses,
                                             const ResolvedHosts& round) {
  std::vector<ResolvedAddress> out;
  for (std::size_t i = 0; i < addresses.size() && i < round.size(); ++i) {
    const config::Address& a = addresses[i];
    if (!round[i]) continue;
    for (const std::string& ip : *round[i]) {
      std::string id = config::Address{ip, a.port}.ToString();
      if (std::any_of(out.begin(), out.end(), [&](const auto& x) { return x.id == id; })) continue;
      out.push_back({std::move(id), ip, a.port, a.host});
    }
  }
  return out;
}

bool NeedsResolution(const std::vector<config::Address>& addresses) {
  return std::any_of(addresses.begin(), addresses.end(),
                     [](const config::Address& a) { return !IsIpLiteral(a.host); });
}

}  // namespace ferry::upstream
