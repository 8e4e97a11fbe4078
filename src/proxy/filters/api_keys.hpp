// A route's API keys (`api_keys: {header, keys: [{name, sha256}]}`): the request must carry one
// of the keys in the header (access/api_key_check.hpp). Without one it gets 401
// `api_key_missing`, with a wrong one 401 `api_key_invalid`, both with
// `WWW-Authenticate: ApiKey header="<header>"`. An accepted key names the caller
// (CallerIdentity::api_key, which authorization reads), and its header is removed: the
// upstream never sees the key. It decides at once and reads no body.
#pragma once

#include <memory>

#include "access/api_key_check.hpp"
#include "config/config.hpp"
#include "proxy/filter.hpp"

namespace ferry::proxy::filters {

class ApiKeysFilter final : public Filter {
 public:
  explicit ApiKeysFilter(const config::ApiKeys& keys);
  std::string_view name() const override { return "api_keys"; }
  Verdict OnRequest(FilterContext& context) const override;

 private:
  access::ApiKeyCheck check_;
  std::string challenge_;  // the WWW-Authenticate value
};

// The factory (filter_registry.cpp): a filter for routes with `api_keys`, else none.
std::unique_ptr<const Filter> MakeApiKeys(const config::Route& route, const config::Config& config);

}  // namespace ferry::proxy::filters
