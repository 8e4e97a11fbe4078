#include "proxy/forwarding_filter.hpp"

#include <vector>

namespace ferry::proxy {

std::optional<LocalReply> ForwardingFilter::OnRequest(FilterContext& context) const {
  http::Headers& h = context.request.headers;
  std::vector<std::string> ferry_headers;
  h.ForEach([&](const http::Headers::Field& f) {
    if (f.name.size() > 8 && http::EqualsIgnoreCase(f.name.substr(0, 8), "x-ferry-")) {
      ferry_headers.emplace_back(f.name);
    }
  });
  for (const std::string& name : ferry_headers) h.Remove(name);

  if (auto xff = h.Get("x-forwarded-for")) {
    std::string joined(*xff);
    joined.append(", ");
    joined.append(context.client_ip);
    h.Set("x-forwarded-for", joined);
  } else {
    h.Add("x-forwarded-for", context.client_ip);
  }
  h.Set("x-forwarded-proto", "http");
  if (!h.Has("x-request-id")) h.Add("x-request-id", context.request_id);
  return std::nullopt;
}

FilterChain BuildFilterChain(const config::Config&) {
  FilterChain chain;
  chain.push_back(std::make_unique<ForwardingFilter>());
  return chain;
}

}  // namespace ferry::proxy
