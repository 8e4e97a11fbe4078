// The body of PUT /v1/topics/{topic}/subscriptions/{sub} (docs/bus.md): what it changes in a
// subscription's options, which are the config's types (config::BusSubscriptionOptions). The
// keys, types and limits are the config's for a subscription (src/config/bus_loader.cpp,
// docs/configuration.md), in JSON; the checks beyond a value's type (filter patterns, push path,
// backoff order, push timeout against the lease, the multiplier's and concurrency's bounds) are
// the loader's own, from config/bus_rules.hpp, with the same wording. Pure: no I/O, thread-safe.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "bus/broker_options.hpp"
#include "config/config.hpp"
#include "core/result.hpp"

namespace ferry::bus {

// Applies `body` (the text of a JSON object) to `current`: the options the subscription runs
// with now, or the defaults for a new one. Only what the body gives changes: a given `filter`
// replaces the whole filter (it is one match), while `backoff` and `push` change only the
// fields they give (a `push` on a subscription that does not push yet needs `service`);
// `"push": null` turns push off. `services` are the ones `push.service` may name.
// Errors: kInvalidArgument, with a message for the client; then nothing is applied.
Result<SubscriptionOptions> ApplySubscriptionPut(
    std::string_view body, SubscriptionOptions current,
    const std::map<std::string, config::Service>& services);

}  // namespace ferry::bus
