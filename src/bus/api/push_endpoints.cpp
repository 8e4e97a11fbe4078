#include "bus/api/push_endpoints.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ferry::bus {

ResolvedHosts ResolveHosts(upstream::Resolver& resolver,
                           const std::vector<config::Address>& endpoints) {
  ResolvedHosts out;
  out.reserve(endpoints.size());
  for (const config::Address& a : endpoints) {
    auto ips = resolver.Resolve(a.host);
    if (ips) {
      out.emplace_back(std::move(*ips));
    } else {
      spdlog::warn("bus push: cannot resolve {}: {}", a.host, ips.error().message());
      out.emplace_back(std::nullopt);
    }
  }
  return out;
}

std::vector<PushAddress> CombineResolved(const std::vector<config::Address>& endpoints,
                                         const ResolvedHosts& round) {
  std::vector<PushAddress> out;
  for (std::size_t i = 0; i < endpoints.size() && i < round.size(); ++i) {
    const config::Address& a = endpoints[i];
    if (!round[i]) continue;
    for (const std::string& ip : *round[i]) {
      std::string id = config::Address{ip, a.port}.ToString();
      if (std::any_of(out.begin(), out.end(), [&](const auto& x) { return x.id == id; })) continue;
      out.push_back({std::move(id), ip, a.port});
    }
  }
  return out;
}

}  // namespace ferry::bus
