// The schema of the resilience keys: policies (merged over the default), health checks, rate
// limits, faults, idempotency and its store, trusted networks. Cross-checks against the rest
// of the file are left to loader.cpp (see policy_loader.hpp).
#include "config/policy_loader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "config/address.hpp"
#include "config/bus_loader.hpp"
#include "config/grpc_loader.hpp"

namespace ferry::config::internal {
namespace {

constexpr std::int64_t kMaxAttempts = 10;
constexpr std::int64_t kMaxCount = 1'000'000;  // requests, slots, queue places
constexpr std::int64_t kMaxHedges = 3;
constexpr std::uint64_t kMaxReplayBodyBytes = 64ull * 1024 * 1024;
constexpr std::uint64_t kMaxStoredResponseBytes = 64ull * 1024 * 1024;
constexpr double kMaxRps = 1e9;
constexpr std::string_view kDefaultPolicy = "default";

constexpr std::string_view kRetryConditions = "connect_failure, reset, try_timeout";

std::optional<RetryCondition> ParseRetryCondition(std::string_view text) {
  if (text == "connect_failure") return RetryCondition::kConnectFailure;
  if (text == "reset") return RetryCondition::kReset;
  if (text == "try_timeout") return RetryCondition::kTryTimeout;
  return std::nullopt;
}

class PolicyReader : private StrictReader {
 public:
  explicit PolicyReader(Diagnostics& diags) : StrictReader(diags) {}

  std::map<std::string, Policy> ReadPolicies(
      const std::vector<std::pair<std::string, Field>>& written) {
    std::map<std::string, Policy> out;
    Policy base;
    base.name = std::string(kDefaultPolicy);
    for (const auto& [name, field] : written) {
      if (name == kDefaultPolicy) base = ReadPolicy(field, base, true);
    }
    out.emplace(base.name, base);
    for (const auto& [name, field] : written) {
      if (name == kDefaultPolicy) continue;
      Policy policy = base;
      policy.name = name;
      out.emplace(name, ReadPolicy(field, std::move(policy), false));
    }
    return out;
  }

  std::optional<HealthCheck> ReadHealthCheck(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    HealthCheck health;
    auto path = map.Take("path");
    if (auto grpc = map.Take("grpc")) {
      // grpc.health.v1's Check in place of the GET (the service must speak HTTP/2: loader.cpp).
      MapReader grpc_map(*grpc, d_);
      if (grpc_map.ok()) {
        health.grpc_service = "";
        if (auto name = grpc_map.Take("service")) {
          if (auto text = ReadString(*name, d_)) health.grpc_service = *text;
        }
        grpc_map.Finish();
      }
      if (path) Error(*path, "path is the GET check's: a grpc: check asks grpc.health.v1 instead");
    }
    if (path) {
      auto text = ReadString(*path, d_);
      if (text && (text->empty() || text->front() != '/')) {
        Error(*path, fmt::format("must start with '/', got '{}'", *text));
      } else if (text) {
        health.path = *text;
      }
    }
    auto interval = map.Take("interval");
    auto timeout = map.Take("timeout");
    bool ok = true;
    if (interval) ok = Set(Positive(*interval), health.interval) && ok;
    if (timeout) ok = Set(Positive(*timeout), health.timeout) && ok;
    if (ok && (interval || timeout) && health.timeout >= health.interval) {
      Error(timeout ? *timeout : *interval,
            fmt::format("timeout ({}{}) must be less than interval ({}{})",
                        FormatDuration(health.timeout), timeout ? "" : ", the default",
                        FormatDuration(health.interval), interval ? "" : ", the default"));
    }
    Assign(map, "unhealthy_after", health.unhealthy_after,
           [&](const Field& f) { return ReadInt(f, 1, 100, d_); });
    Assign(map, "healthy_after", health.healthy_after,
           [&](const Field& f) { return ReadInt(f, 1, 100, d_); });
    map.Finish();
    return health;
  }

  std::optional<RateLimit> ReadRateLimit(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    RateLimit limit;
    bool rps_ok = false;
    if (auto rps = Require(map, field, "rps")) {
      if (auto value = ReadNumber(*rps, 0, d_)) {
        if (*value <= 0 || *value > kMaxRps) {
          Error(*rps, fmt::format("must be greater than 0 and at most {:g}, got {}", kMaxRps,
                                  rps->node.Scalar()));
        } else {
          limit.rps = *value;
          rps_ok = true;
        }
      }
    }
    if (auto burst = map.Take("burst")) {
      if (auto value = ReadInt(*burst, 1, std::numeric_limits<std::uint32_t>::max(), d_)) {
        limit.burst = static_cast<std::uint32_t>(*value);
      }
    } else if (rps_ok) {
      limit.burst = static_cast<std::uint32_t>(std::max(1.0, std::ceil(limit.rps)));
    }
    if (auto by = map.Take("by")) {
      if (auto key = ReadRequestKey(*by, "by")) {
        limit.per_key = true;
        limit.by.kind = key->kind == HashOn::Kind::kHeader ? RateLimit::By::Kind::kHeader
                                                           : RateLimit::By::Kind::kClientAddress;
        limit.by.header = key->header;
      }
    }
    map.Finish();
    return limit;
  }

  std::optional<Fault> ReadFault(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    Fault fault;
    auto abort = map.Take("abort");
    auto delay = map.Take("delay");
    if (abort) {
      MapReader block(*abort, d_);
      FaultAbort out;
      Assign(block, "status", out.status, [&](const Field& f) { return ReadInt(f, 200, 599, d_); });
      Assign(block, "percent", out.percent, [&](const Field& f) { return Percent(f); });
      block.Finish();
      fault.abort = out;
    }
    if (delay) {
      MapReader block(*delay, d_);
      FaultDelay out;
      if (auto duration = Require(block, *delay, "duration"))
        Set(Positive(*duration), out.duration);
      Assign(block, "percent", out.percent, [&](const Field& f) { return Percent(f); });
      block.Finish();
      fault.delay = out;
    }
    if (!abort && !delay) Error(field, "a fault needs abort, delay or both");
    map.Finish();
    return fault;
  }

  std::optional<Idempotency> ReadIdempotency(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    Idempotency out;
    Assign(map, "ttl", out.ttl, [&](const Field& f) { return Positive(f); });
    Assign(map, "max_response_bytes", out.max_response_bytes,
           [&](const Field& f) { return NonZeroSize(f, kMaxStoredResponseBytes); });
    Assign(map, "header", out.header, [&](const Field& f) { return ReadHeaderName(f, d_); });
    map.Finish();
    return out;
  }

  std::optional<IdempotencyStore> ReadIdempotencyStore(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    IdempotencyStore store;
    auto dir = map.Take("data_dir");
    auto redis = map.Take("redis");
    bool ok = true;
    if (dir) {
      auto text = ReadString(*dir, d_);
      if (text && text->empty()) Error(*dir, "must not be empty");
      ok = text && !text->empty();
      if (ok) store.data_dir = *text;
    }
    if (redis) {
      auto text = ReadString(*redis, d_);
      if (text) {
        auto address = ParseAddress(*text, AddressUse::kEndpoint);
        if (address) {
          store.redis = *address;
        } else {
          Error(*redis, address.error().message());
          ok = false;
        }
      } else {
        ok = false;
      }
    }
    if (dir && redis) {
      Error(*redis, "data_dir and redis are exclusive: the store is either embedded or Redis");
      ok = false;
    } else if (!dir && !redis) {
      Error(field, "needs data_dir: DIR (embedded) or redis: HOST:PORT");
      ok = false;
    }
    map.Finish();
    if (!ok) return std::nullopt;
    return store;
  }

  std::vector<IpNetwork> ReadNetworks(const Field& field) {
    std::vector<IpNetwork> out;
    auto items = ReadSequence(field, d_);
    if (!items) return out;
    for (const Field& item : *items) {
      auto text = ReadString(item, d_);
      if (!text) continue;
      auto network = ParseIpNetwork(*text);
      if (!network) {
        Error(item, network.error().message());
        continue;
      }
      auto same = std::find_if(out.begin(), out.end(), [&](const IpNetwork& n) {
        return n.v6 == network->v6 && n.prefix == network->prefix &&
               std::equal(std::begin(n.bytes), std::end(n.bytes), std::begin(network->bytes));
      });
      if (same != out.end()) {
        Error(item,
              fmt::format("network '{}' is listed twice (as '{}' before)", *text, same->text));
        continue;
      }
      out.push_back(*network);
    }
    return out;
  }

  std::optional<HashOn> ReadRequestKey(const Field& field, std::string_view key) {
    const std::string expected = fmt::format("{} must be client_address or {{header: NAME}}", key);
    if (field.node.IsScalar()) {
      if (field.node.Scalar() == "client_address") return HashOn{};
      Error(field, fmt::format("{}, got '{}'", expected, field.node.Scalar()));
      return std::nullopt;
    }
    if (!field.node.IsMap()) {
      Error(field, expected);
      return std::nullopt;
    }
    MapReader map(field, d_);
    std::optional<HashOn> out;
    if (auto header = Require(map, field, "header")) {
      if (auto name = ReadHeaderName(*header, d_)) out = HashOn{HashOn::Kind::kHeader, *name};
    }
    map.Finish();
    return out;
  }

 private:
  // Sets out from a read value; false when the read failed.
  template <typename T, typename U>
  static bool Set(const std::optional<U>& value, T& out) {
    if (value) out = static_cast<T>(*value);
    return value.has_value();
  }

  std::optional<double> Percent(const Field& field) {
    auto value = ReadNumber(field, 0, d_);
    if (value && *value > 100) {
      Error(field, fmt::format("must be a percentage from 0 to 100, got {}", field.node.Scalar()));
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::uint64_t> NonZeroSize(const Field& field, std::uint64_t max) {
    auto value = ReadSize(field, max, d_);
    if (value && *value == 0) {
      Error(field, "must be greater than 0");
      return std::nullopt;
    }
    return value;
  }

  // A ratio above 0 ("50%"); what 0 would mean is said by switching the block off.
  std::optional<double> PositiveRatio(const Field& field, std::string_view block) {
    auto value = ReadRatio(field, d_);
    if (value && *value <= 0) {
      Error(field, fmt::format("must be greater than 0% (use {}: false to switch it off)", block));
      return std::nullopt;
    }
    return value;
  }

  // A block that `false` switches off; a map is read over the inherited block, or over the
  // struct's defaults when the inherited policy has it off.
  template <typename T, typename ReadBlock>
  void ReadSwitchable(const Field& field, std::optional<T>& out, ReadBlock read) {
    if (IsFalseScalar(field)) {
      out.reset();
      return;
    }
    if (!field.node.IsMap()) {
      Error(field, "expected a map, or false to switch it off");
      return;
    }
    T value = out.value_or(T{});
    MapReader map(field, d_);
    read(map, value);
    map.Finish();
    out = value;
  }

  Policy ReadPolicy(const Field& field, Policy policy, bool is_default) {
    MapReader map(field, d_);
    const std::string_view inherited = is_default ? ", the default" : ", from the default policy";
    auto timeout = map.Take("timeout");
    auto try_timeout = map.Take("try_timeout");
    bool ok = true;
    if (timeout) ok = Set(ReadDuration(*timeout, d_), policy.timeout) && ok;
    if (try_timeout) ok = Set(ReadDuration(*try_timeout, d_), policy.try_timeout) && ok;
    if (ok && (timeout || try_timeout) && policy.try_timeout > Duration::zero() &&
        policy.timeout > Duration::zero() && policy.try_timeout >= policy.timeout) {
      Error(try_timeout ? *try_timeout : *timeout,
            fmt::format("try_timeout ({}{}) must be less than timeout ({}{})",
                        FormatDuration(policy.try_timeout), try_timeout ? "" : inherited,
                        FormatDuration(policy.timeout), timeout ? "" : inherited));
    }
    if (auto retry = map.Take("retry")) ReadRetry(*retry, policy.retry);
    if (auto breaker = map.Take("circuit_breaker")) {
      ReadSwitchable(*breaker, policy.circuit_breaker,
                     [&](MapReader& m, CircuitBreakerPolicy& b) { ReadBreaker(m, b); });
    }
    if (auto outlier = map.Take("outlier_detection")) {
      ReadSwitchable(*outlier, policy.outlier_detection,
                     [&](MapReader& m, OutlierDetectionPolicy& o) { ReadOutlier(m, o); });
    }
    if (auto concurrency = map.Take("concurrency")) {
      ReadSwitchable(*concurrency, policy.concurrency, [&](MapReader& m, ConcurrencyPolicy& c) {
        Assign(m, "max", c.max, [&](const Field& f) { return ReadInt(f, 1, kMaxCount, d_); });
        Assign(m, "queue", c.queue, [&](const Field& f) { return ReadInt(f, 0, kMaxCount, d_); });
      });
    }
    if (auto hedge = map.Take("hedge")) {
      ReadSwitchable(*hedge, policy.hedge, [&](MapReader& m, HedgePolicy& h) {
        Assign(m, "after", h.after, [&](const Field& f) { return Positive(f); });
        Assign(m, "max_extra", h.max_extra,
               [&](const Field& f) { return ReadInt(f, 1, kMaxHedges, d_); });
      });
    }
    map.Finish();
    return policy;
  }

  void ReadRetry(const Field& field, RetryPolicy& retry) {
    if (IsFalseScalar(field)) {
      Error(field, "retry cannot be switched off; write retry: {attempts: 1} for no retries");
      return;
    }
    MapReader map(field, d_);
    Assign(map, "attempts", retry.attempts,
           [&](const Field& f) { return ReadInt(f, 1, kMaxAttempts, d_); });
    if (auto backoff = map.Take("backoff")) {
      ReadBackoff(*backoff, retry.backoff.initial, retry.backoff.max, retry.backoff.multiplier, d_);
    }
    if (auto on = map.Take("on")) ReadRetryOn(*on, retry);
    if (auto budget = map.Take("budget")) {
      MapReader block(*budget, d_);
      Assign(block, "ratio", retry.budget.ratio, [&](const Field& f) { return ReadRatio(f, d_); });
      Assign(block, "min_per_second", retry.budget.min_per_second,
             [&](const Field& f) { return ReadInt(f, 0, kMaxCount, d_); });
      block.Finish();
    }
    Assign(map, "replay_body_bytes", retry.replay_body_bytes,
           [&](const Field& f) { return ReadSize(f, kMaxReplayBodyBytes, d_); });
    map.Finish();
  }

  // `on` replaces both lists: condition names go to `on`, status codes to `on_status`.
  void ReadRetryOn(const Field& field, RetryPolicy& retry) {
    auto items = ReadSequence(field, d_);
    if (!items) return;
    std::vector<RetryCondition> conditions;
    std::vector<int> statuses;
    std::vector<int> grpc_statuses;
    for (const Field& item : *items) {
      if (IsIntegerScalar(item)) {
        auto status = ReadInt(item, 100, 599, d_);
        if (!status) continue;
        if (*status != 429 && *status < 500) {
          Error(item, fmt::format("status {} is not retried: use 429 or 500-599", *status));
        } else if (std::find(statuses.begin(), statuses.end(), *status) != statuses.end()) {
          Error(item, fmt::format("status {} is listed twice", *status));
        } else {
          statuses.push_back(static_cast<int>(*status));
        }
        continue;
      }
      auto text = ReadString(item, d_);
      if (!text) continue;
      auto condition = ParseRetryCondition(*text);
      if (!condition) {
        if (auto grpc = GrpcStatusByName(*text)) {  // for a route's grpc.idempotent methods
          if (std::find(grpc_statuses.begin(), grpc_statuses.end(), *grpc) != grpc_statuses.end()) {
            Error(item, fmt::format("'{}' is listed twice", *text));
          } else {
            grpc_statuses.push_back(*grpc);
          }
          continue;
        }
        Error(item, fmt::format("unknown retry condition '{}' (expected {}, or an unquoted status "
                                "code: 429 or 500-599), or gRPC status name ({})",
                                *text, kRetryConditions, kGrpcStatusNames));
      } else if (std::find(conditions.begin(), conditions.end(), *condition) != conditions.end()) {
        Error(item, fmt::format("'{}' is listed twice", *text));
      } else {
        conditions.push_back(*condition);
      }
    }
    retry.on = std::move(conditions);
    retry.on_status = std::move(statuses);
    retry.on_grpc = std::move(grpc_statuses);
  }

  void ReadBreaker(MapReader& map, CircuitBreakerPolicy& breaker) {
    Assign(map, "failure_ratio", breaker.failure_ratio,
           [&](const Field& f) { return PositiveRatio(f, "circuit_breaker"); });
    Assign(map, "min_requests", breaker.min_requests,
           [&](const Field& f) { return ReadInt(f, 1, kMaxCount, d_); });
    Assign(map, "window", breaker.window, [&](const Field& f) { return Positive(f); });
    Assign(map, "open_for", breaker.open_for, [&](const Field& f) { return Positive(f); });
    Assign(map, "half_open_requests", breaker.half_open_requests,
           [&](const Field& f) { return ReadInt(f, 1, 1000, d_); });
  }

  void ReadOutlier(MapReader& map, OutlierDetectionPolicy& outlier) {
    Assign(map, "consecutive_failures", outlier.consecutive_failures,
           [&](const Field& f) { return ReadInt(f, 1, 1000, d_); });
    auto base = map.Take("base_ejection");
    auto max = map.Take("max_ejection");
    bool ok = true;
    if (base) ok = Set(Positive(*base), outlier.base_ejection) && ok;
    if (max) ok = Set(Positive(*max), outlier.max_ejection) && ok;
    if (ok && (base || max) && outlier.max_ejection < outlier.base_ejection) {
      Error(max ? *max : *base,
            fmt::format("max_ejection ({}{}) must be at least base_ejection ({}{})",
                        FormatDuration(outlier.max_ejection), max ? "" : ", the default",
                        FormatDuration(outlier.base_ejection), base ? "" : ", the default"));
    }
    Assign(map, "max_ejected", outlier.max_ejected,
           [&](const Field& f) { return PositiveRatio(f, "outlier_detection"); });
  }
};

}  // namespace

std::map<std::string, Policy> ReadPolicies(
    const std::vector<std::pair<std::string, Field>>& written, Diagnostics& diags) {
  return PolicyReader(diags).ReadPolicies(written);
}

std::optional<HealthCheck> ReadHealthCheck(const Field& field, Diagnostics& diags) {
  return PolicyReader(diags).ReadHealthCheck(field);
}

std::optional<RateLimit> ReadRateLimit(const Field& field, Diagnostics& diags) {
  return PolicyReader(diags).ReadRateLimit(field);
}

std::optional<Fault> ReadFault(const Field& field, Diagnostics& diags) {
  return PolicyReader(diags).ReadFault(field);
}

std::optional<Idempotency> ReadIdempotency(const Field& field, Diagnostics& diags) {
  return PolicyReader(diags).ReadIdempotency(field);
}

std::optional<IdempotencyStore> ReadIdempotencyStore(const Field& field, Diagnostics& diags) {
  return PolicyReader(diags).ReadIdempotencyStore(field);
}

std::vector<IpNetwork> ReadNetworks(const Field& field, Diagnostics& diags) {
  return PolicyReader(diags).ReadNetworks(field);
}

std::optional<HashOn> ReadRequestKey(const Field& field, std::string_view key, Diagnostics& diags) {
  return PolicyReader(diags).ReadRequestKey(field, key);
}

}  // namespace ferry::config::internal
