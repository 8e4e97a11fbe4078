#include "bus/api/subscription_put.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>
#include <limits>

#include "config/bus_rules.hpp"
#include "core/units.hpp"
#include "observability/json_text.hpp"

namespace ferry::bus {
namespace {

using boost::json::object;
using boost::json::value;

tl::unexpected<Error> Bad(std::string message) {
  return Fail(ErrorCode::kInvalidArgument, std::move(message));
}

// The value as the client wrote it, for messages: "abc", 5, null.
std::string Shown(const value& v) { return observability::JsonText(v); }

// A duration string; `positive`: > 0 (else >= 0).
Result<Duration> DurationValue(const value& v, std::string_view name, bool positive) {
  const char* what = positive ? "a positive duration" : "a duration";
  if (!v.is_string()) {
    return Bad(fmt::format("'{}' must be {} like \"1s\", got {}", name, what, Shown(v)));
  }
  auto d = ParseDuration(v.as_string());
  if (!d || d->count() < 0 || (positive && d->count() == 0)) {
    return Bad(fmt::format("'{}' must be {} like \"1s\", got {}", name, what, Shown(v)));
  }
  return *d;
}

// An integer in [min, max].
Result<std::uint64_t> IntegerValue(const value& v, std::string_view name, std::uint64_t min,
                                   std::uint64_t max) {
  std::optional<std::uint64_t> n;
  if (v.is_uint64()) n = v.as_uint64();
  if (v.is_int64() && v.as_int64() >= 0) n = static_cast<std::uint64_t>(v.as_int64());
  if (!n || *n < min || *n > max) {
    return Bad(
        fmt::format("'{}' must be an integer from {} to {}, got {}", name, min, max, Shown(v)));
  }
  return *n;
}

Result<object> ObjectValue(const value& v, std::string_view name) {
  if (!v.is_object()) return Bad(fmt::format("'{}' must be an object, got {}", name, Shown(v)));
  return v.as_object();
}

Result<void> ApplyFilter(const value& v, SubscriptionFilter& filter) {
  if (!v.is_object()) return Bad("'filter' must be an object");
  filter = {};
  for (const auto& [key, fv] : v.as_object()) {
    if (!fv.is_string()) return Bad("filter values must be strings");
    std::string text(fv.as_string());
    // The config's rule (bus_rules.hpp): a '*' only at the end, where it makes a prefix match.
    if (auto problem = config::BusFilterProblem(text)) {
      return Bad(fmt::format("'filter.{}': {}", std::string_view(key), *problem));
    }
    if (key == "type") {
      filter.type = std::move(text);
    } else if (key == "source") {
      filter.source = std::move(text);
    } else if (key == "subject") {
      filter.subject = std::move(text);
    } else {
      return Bad(fmt::format("unknown filter key '{}' (expected type, source, subject)",
                             std::string_view(key)));
    }
  }
  return Ok();
}

// Changes the fields given; the result must still hold max >= initial.
Result<void> ApplyBackoff(const value& v, BackoffOptions& backoff) {
  auto o = ObjectValue(v, "backoff");
  if (!o) return tl::unexpected(o.error());
  BackoffOptions out = backoff;
  bool initial_given = false;
  bool max_given = false;
  for (const auto& [key, fv] : *o) {
    if (key == "initial") {
      auto d = DurationValue(fv, "backoff.initial", /*positive=*/true);
      if (!d) return tl::unexpected(d.error());
      out.initial = *d;
      initial_given = true;
    } else if (key == "max") {
      auto d = DurationValue(fv, "backoff.max", /*positive=*/false);
      if (!d) return tl::unexpected(d.error());
      out.max = *d;
      max_given = true;
    } else if (key == "multiplier") {
      if (!fv.is_number() || !std::isfinite(fv.to_number<double>()) ||
          fv.to_number<double>() < config::kMinBusBackoffMultiplier) {
        return Bad(
            fmt::format("'backoff.multiplier' must be a number >= 1 (1: a constant wait), "
                        "got {}",
                        Shown(fv)));
      }
      out.multiplier = fv.to_number<double>();
    } else {
      return Bad(fmt::format("unknown backoff key '{}' (expected initial, max, multiplier)",
                             std::string_view(key)));
    }
  }
  if (auto problem = config::BusBackoffProblem(
          {"'backoff.max'", out.max, max_given ? "" : ", as it runs now"},
          {"'backoff.initial'", out.initial, initial_given ? "" : ", as it runs now"})) {
    return Bad(*problem);
  }
  backoff = out;
  return Ok();
}

// null: push off. An object changes the fields given of the current push, or makes a new one
// (then `service` is required).
Result<void> ApplyPush(const value& v, std::optional<PushOptions>& push,
                       const std::map<std::string, config::Service>& services) {
  if (v.is_null()) {
    push.reset();
    return Ok();
  }
  if (!v.is_object()) {
    return Bad(fmt::format("'push' must be an object, or null to turn push off, got {}", Shown(v)));
  }
  const object& o = v.as_object();
  if (!push && !o.contains("service")) {
    return Bad(
        "'push' needs 'service' (a service of the node's config): the subscription does "
        "not push yet");
  }
  PushOptions out = push.value_or(PushOptions{});
  for (const auto& [key, fv] : o) {
    if (key == "service") {
      if (!fv.is_string()) {
        return Bad(fmt::format("'push.service' must be a string, got {}", Shown(fv)));
      }
      std::string name(fv.as_string());
      if (!services.contains(name)) {
        std::string known;
        for (const auto& [s, ignored] : services) known += (known.empty() ? "" : ", ") + s;
        return Bad(fmt::format("'push.service': unknown service '{}' (the config's services: {})",
                               name, known.empty() ? "none" : known));
      }
      out.service = std::move(name);
    } else if (key == "path") {
      if (!fv.is_string()) {
        return Bad(fmt::format("'push.path' must be a path starting with '/', got {}", Shown(fv)));
      }
      if (auto problem = config::BusPushPathProblem(fv.as_string())) {
        return Bad(fmt::format("'push.path' {}", *problem));
      }
      out.path = std::string(fv.as_string());
    } else if (key == "timeout") {
      auto d = DurationValue(fv, "push.timeout", /*positive=*/true);
      if (!d) return tl::unexpected(d.error());
      out.timeout = *d;
    } else if (key == "concurrency") {
      auto n = IntegerValue(fv, "push.concurrency", 1, config::kMaxBusPushConcurrency);
      if (!n) return tl::unexpected(n.error());
      out.concurrency = static_cast<std::uint32_t>(*n);
    } else {
      return Bad(fmt::format("unknown push key '{}' (expected service, path, timeout, concurrency)",
                             std::string_view(key)));
    }
  }
  push = std::move(out);
  return Ok();
}

}  // namespace

Result<SubscriptionOptions> ApplySubscriptionPut(
    std::string_view body, SubscriptionOptions options,
    const std::map<std::string, config::Service>& services) {
  object o;
  if (!body.empty()) {
    boost::system::error_code ec;
    value v = boost::json::parse(body, ec);
    if (ec || !v.is_object()) return Bad("the body must be a JSON object");
    o = std::move(v.as_object());
  }
  for (const auto& [key, v] : o) {
    Result<void> r = Ok();
    if (key == "filter") {
      r = ApplyFilter(v, options.filter);
    } else if (key == "lease") {
      auto d = DurationValue(v, "lease", /*positive=*/true);
      if (d) options.delivery.lease = *d;
      if (!d) r = tl::unexpected(d.error());
    } else if (key == "max_deliveries") {
      auto n = IntegerValue(v, "max_deliveries", 0, std::numeric_limits<std::uint32_t>::max());
      if (n) options.delivery.max_deliveries = static_cast<std::uint32_t>(*n);
      if (!n) r = tl::unexpected(n.error());
    } else if (key == "from_beginning") {
      if (!v.is_bool()) return Bad("'from_beginning' must be a boolean");
      options.from_beginning = v.as_bool();
    } else if (key == "backoff") {
      r = ApplyBackoff(v, options.delivery.backoff);
    } else if (key == "push") {
      r = ApplyPush(v, options.push, services);
    } else {
      return Bad(
          fmt::format("unknown key '{}' (expected filter, lease, max_deliveries, "
                      "from_beginning, backoff, push)",
                      std::string_view(key)));
    }
    if (!r) return tl::unexpected(r.error());
  }
  // As in the config: a push still waiting when its lease ends would be delivered again.
  const bool lease_given = o.contains("lease");
  const bool push_given = o.contains("push");
  if ((lease_given || push_given) && options.push) {
    const value& given = push_given ? o.at("push") : value();
    const bool timeout_given = given.is_object() && given.as_object().contains("timeout");
    if (auto problem = config::BusPushTimeoutProblem(
            {"'push.timeout'", options.push->timeout, timeout_given ? "" : ", as it runs now"},
            {"'lease'", options.delivery.lease, lease_given ? "" : ", as it runs now"})) {
      return Bad(*problem);
    }
  }
  return options;
}

}  // namespace ferry::bus
