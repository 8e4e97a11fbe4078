// The request path's extension point: a chain of small filters between the codec and the
// upstream. Each sees the request head after routing and before the upstream is picked, and
// the response head before it goes to the client. A filter either lets the exchange go on or
// answers it itself with a local reply (authentication, rate limits, fault injection and the
// cache of later issues plug in here without touching the codec or each other).
// Thread safety: filters are built per config snapshot and shared by all workers, so OnRequest
// and OnResponse are const; per-worker state belongs in the worker, reached via the context.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"
#include "http/message.hpp"

namespace ferry::proxy {

// What a filter may read and change about one exchange.
struct FilterContext {
  http::RequestHead& request;  // as it will be sent upstream (target already rewritten)
  const config::Route& route;
  std::string_view client_ip;   // the peer's address, without port
  std::string_view request_id;  // x-request-id, kept from the client or generated
};

// A response Ferry makes itself instead of asking the upstream.
struct LocalReply {
  int status;
  std::string code;     // stable snake_case error code, e.g. "rate_limited"
  std::string message;  // human-readable
};

class Filter {
 public:
  virtual ~Filter() = default;
  virtual std::string_view name() const = 0;
  // nullopt: go on to the next filter, then the upstream.
  virtual std::optional<LocalReply> OnRequest(FilterContext& context) const = 0;
  virtual void OnResponse(FilterContext&, http::ResponseHead&) const {}
};

using FilterChain = std::vector<std::unique_ptr<const Filter>>;

// The chain every route runs today: forwarding headers. Later issues add theirs here.
FilterChain BuildFilterChain(const config::Config& config);

}  // namespace ferry::proxy
