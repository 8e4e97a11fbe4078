// Who may use the bus API: the API keys of `bus.api.api_keys` and the JWT provider of
// `bus.api.auth` (authentication: both when both are set, the key first) and the
// `authorization:` rules that name the bus's operations, or no route (authorization). Each
// request is one operation — bus.publish, bus.consume, bus.replay or bus.manage — decided by
// its method and path before its body is read. The checks are the proxy filters' own
// (src/access): the same keys, hashing, rules and metric.
// Thread safety: built on the bus thread (at start and at each reload) and used there only.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "access/api_key_check.hpp"
#include "access/authz_policy.hpp"
#include "config/config.hpp"
#include "http/message.hpp"
#include "observability/metric_family.hpp"

namespace ferry::auth {
class Provider;
}

namespace ferry::bus {

struct ApiResponse;

// The operation a request to the bus API is: "bus.publish" (POST .../messages of a queue,
// POST .../events of a topic), "bus.consume" (GET .../messages, POST .../ack, nack, extend,
// GET .../dead-letters), "bus.replay" (POST .../dead-letters/replay, POST a subscription's
// .../replay) or "bus.manage" (everything else: lists, stats, PUT and DELETE of subscriptions).
std::string_view BusOperation(const http::RequestHead& request);

class BusAccess {
 public:
  // decisions: ferry_authz_decisions_total (null: not counted).
  BusAccess(const config::Config& config, observability::CounterFamily* decisions);

  // nullopt: the request may go on. Else its answer: 401 api_key_missing or api_key_invalid
  // (with www_authenticate set); 401 jwt_missing or jwt_invalid (WWW-Authenticate: Bearer, as
  // on a route), 503 jwks_unavailable; or 403 forbidden. A valid token's claims are what the
  // authorization rules' `claims` match. `peer` is the verified mesh client's SPIFFE
  // ID ("" if none); `slot` the bus thread's metric slot.
  std::optional<ApiResponse> Admit(const http::RequestHead& request, std::string_view peer,
                                   std::size_t slot) const;

  // Nothing to check: no keys, no rule for the bus.
  bool open() const;

 private:
  struct Operation {
    std::string name;
    access::AuthzPolicy policy;
    observability::Counter* allowed = nullptr;
    observability::Counter* denied = nullptr;
  };
  std::optional<access::ApiKeyCheck> keys_;
  std::string challenge_;
  std::shared_ptr<auth::Provider> jwt_;  // bus.api.auth's provider; null: no JWT asked for
  std::vector<Operation> operations_;    // those some rule applies to
};

}  // namespace ferry::bus
