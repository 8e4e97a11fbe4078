#include "proxy/filters/forwarding.hpp"

#include <string>

namespace ferry::proxy::filters {

Verdict Forwarding::OnRequest(FilterContext& context) const {
  http::Headers& h = context.request.headers;
  // One pass: strip x-ferry-* (Remove only marks fields, so it may run inside ForEach) and
  // collect every X-Forwarded-For line: repeated lines are one list (RFC 9110 5.3), and the
  // line a trusted front proxy added is as likely to be the second as the first.
  std::string forwarded_for;
  int forwarded_lines = 0;
  // (Looked up only for a request that carries a deadline: most have no x-ferry-* field.)
  int trusted = -1;  // unknown yet
  h.ForEach([&](const http::Headers::Field& f) {
    if (f.name.size() > 8 && http::EqualsIgnoreCase(f.name.substr(0, 8), "x-ferry-")) {
      if (http::EqualsIgnoreCase(f.name, "x-ferry-deadline-ms")) {
        if (trusted < 0) trusted = TrustsDeadlineOf(context.client_ip) ? 1 : 0;
        if (trusted == 1) return;
      }
      h.Remove(f.name);
    } else if (http::EqualsIgnoreCase(f.name, "x-forwarded-for")) {
      ++forwarded_lines;
      std::string_view value = f.value;
      while (!value.empty() && (value.back() == ',' || value.back() == ' ')) value.remove_suffix(1);
      if (value.empty()) return;
      if (!forwarded_for.empty()) forwarded_for.append(", ");
      forwarded_for.append(value);
    }
  });
  if (forwarded_lines == 0) {
    h.Add("x-forwarded-for", context.client_ip);  // the common case: no copy
  } else {
    if (!forwarded_for.empty()) forwarded_for.append(", ");
    forwarded_for.append(context.client_ip);
    h.Set("x-forwarded-for", forwarded_for);
  }
  h.Set("x-forwarded-proto", https_ ? "https" : "http");
  if (!context.caller.peer.empty()) h.Set("x-ferry-caller", context.caller.peer);
  if (!h.Has("x-request-id")) h.Add("x-request-id", context.request_id);
  return Verdict::kContinue;
}

bool Forwarding::TrustsDeadlineOf(std::string_view client_ip) const {
  for (const config::IpNetwork& network : trust_deadline_from_) {
    if (network.Contains(client_ip)) return true;
  }
  return false;
}

std::unique_ptr<const Filter> MakeForwarding(const config::Route& route,
                                             const config::Config& config) {
  // The listener the route belongs to (the route is one of its routes, in the same config).
  for (const config::Listener& listener : config.listeners) {
    for (const config::Route& r : listener.routes) {
      if (&r == &route) {
        return std::make_unique<Forwarding>(listener.trust_deadline_from, listener.tls.has_value());
      }
    }
  }
  return std::make_unique<Forwarding>();
}

}  // namespace ferry::proxy::filters
