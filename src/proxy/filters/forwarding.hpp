// Adds the forwarding headers upstreams expect from a proxy: x-forwarded-for (the client's
// address appended to any list the client sent), x-forwarded-proto, x-request-id (kept if the
// client sent one, generated otherwise), and strips Ferry's own x-ferry-* headers, which only
// other Ferry hops may send: x-ferry-deadline-ms stays when the client's address is inside the
// listener's `trust_deadline_from` networks (the exchange then honours it). x-ferry-caller is
// set to the caller's verified SPIFFE ID (CallerIdentity::peer, from the client certificate a
// mesh listener verified), and only then. On every route; it
// decides at once and reads no body.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "proxy/filter.hpp"

namespace ferry::proxy::filters {

class Forwarding final : public Filter {
 public:
  Forwarding() = default;
  explicit Forwarding(std::vector<config::IpNetwork> trust_deadline_from, bool https = false)
      : trust_deadline_from_(std::move(trust_deadline_from)), https_(https) {}
  std::string_view name() const override { return "forwarding"; }
  Verdict OnRequest(FilterContext& context) const override;

 private:
  bool TrustsDeadlineOf(std::string_view client_ip) const;
  std::vector<config::IpNetwork> trust_deadline_from_;
  bool https_ = false;  // the listener terminates TLS: x-forwarded-proto https
};

// The factory (filter_registry.cpp): every route gets the filter; it has no settings.
std::unique_ptr<const Filter> MakeForwarding(const config::Route& route,
                                             const config::Config& config);

}  // namespace ferry::proxy::filters
