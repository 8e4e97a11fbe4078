// Adds the forwarding headers upstreams expect from a proxy: x-forwarded-for (the client's
// address appended to any list the client sent), x-forwarded-proto, x-request-id (kept if
// the client sent one, generated otherwise), and strips Ferry's own x-ferry-* headers, which
// only other Ferry hops may send.
#pragma once

#include "proxy/filter.hpp"

namespace ferry::proxy {

class ForwardingFilter final : public Filter {
 public:
  std::string_view name() const override { return "forwarding"; }
  std::optional<LocalReply> OnRequest(FilterContext& context) const override;
};

}  // namespace ferry::proxy
