// The resilience keys: policies merged over the default, the keys of routes, services and
// listeners, idempotency_store, and one test per kind of error with its exact message.
#include <gtest/gtest.h>

#include "config/load_for_test.hpp"

namespace ferry::config {
namespace {

using namespace std::chrono_literals;

// `policies:` with one policy "p" whose body (indented four spaces) is given; its first key is
// on line 3.
std::string Policy1(const std::string& body) { return "policies:\n  p:\n" + body; }

// Copies, so that a test may hold the result of a temporary config.
Policy Get(const std::shared_ptr<const Config>& config, const std::string& name) {
  return config->policies.at(name);
}

// A listener with one route (body indented six spaces, first key on line 4) to service api.
std::string Route1(const std::string& body) {
  return "listeners:\n  - name: w\n    listen: 127.0.0.1:0\n    routes:\n      - service: api\n" +
         body + "services:\n  api: {endpoints: [127.0.0.1:9000]}\n";
}

Route FirstRoute(const std::shared_ptr<const Config>& config) {
  return config->listeners.at(0).routes.at(0);
}

// --- Policies ----------------------------------------------------------------------------------

TEST(PolicyConfig, WithoutPoliciesThereIsTheBuiltInDefault) {
  auto config = Load("workers: 1\n");
  ASSERT_EQ(config->policies.size(), 1u);
  const Policy& d = Get(config, "default");
  EXPECT_EQ(d.name, "default");
  EXPECT_EQ(d.timeout, 15s);
  EXPECT_EQ(d.try_timeout, 0s);
  EXPECT_EQ(d.retry.attempts, 2u);
  EXPECT_EQ(d.retry.backoff.initial, 25ms);
  EXPECT_EQ(d.retry.backoff.max, 1s);
  EXPECT_EQ(d.retry.backoff.multiplier, 2.0);
  EXPECT_EQ(d.retry.on,
            (std::vector<RetryCondition>{RetryCondition::kConnectFailure, RetryCondition::kReset}));
  EXPECT_EQ(d.retry.on_status, (std::vector<int>{502, 503}));
  EXPECT_DOUBLE_EQ(d.retry.budget.ratio, 0.2);
  EXPECT_EQ(d.retry.budget.min_per_second, 10u);
  EXPECT_EQ(d.retry.replay_body_bytes, 64u * 1024);
  EXPECT_FALSE(d.circuit_breaker);
  ASSERT_TRUE(d.outlier_detection);
  EXPECT_EQ(*d.outlier_detection, OutlierDetectionPolicy{});
  EXPECT_FALSE(d.concurrency);
  EXPECT_FALSE(d.hedge);
}

TEST(PolicyConfig, EveryKeyIsRead) {
  auto config = Load(Policy1(R"(    timeout: 2s
    try_timeout: 500ms
    retry:
      attempts: 3
      backoff: {initial: 10ms, max: 2s, multiplier: 1.5}
      on: [connect_failure, reset, try_timeout, 502, 503, 504, 429]
      budget: {ratio: 25%, min_per_second: 3}
      replay_body_bytes: 1MiB
    circuit_breaker: {failure_ratio: 40%, min_requests: 7, window: 20s, open_for: 3s,
                      half_open_requests: 2}
    outlier_detection: {consecutive_failures: 4, base_ejection: 10s, max_ejection: 1m,
                        max_ejected: 0.3}
    concurrency: {max: 100, queue: 5}
    hedge: {after: 40ms, max_extra: 2}
)"));
  const Policy& p = Get(config, "p");
  EXPECT_EQ(p.name, "p");
  EXPECT_EQ(p.timeout, 2s);
  EXPECT_EQ(p.try_timeout, 500ms);
  EXPECT_EQ(p.retry.attempts, 3u);
  EXPECT_EQ(p.retry.backoff.initial, 10ms);
  EXPECT_EQ(p.retry.backoff.max, 2s);
  EXPECT_EQ(p.retry.backoff.multiplier, 1.5);
  EXPECT_EQ(p.retry.on,
            (std::vector<RetryCondition>{RetryCondition::kConnectFailure, RetryCondition::kReset,
                                         RetryCondition::kTryTimeout}));
  EXPECT_EQ(p.retry.on_status, (std::vector<int>{502, 503, 504, 429}));
  EXPECT_DOUBLE_EQ(p.retry.budget.ratio, 0.25);
  EXPECT_EQ(p.retry.budget.min_per_second, 3u);
  EXPECT_EQ(p.retry.replay_body_bytes, 1024u * 1024);
  EXPECT_EQ(p.circuit_breaker, (CircuitBreakerPolicy{0.4, 7, 20s, 3s, 2}));
  EXPECT_EQ(p.outlier_detection, (OutlierDetectionPolicy{4, 10s, 1min, 0.3}));
  EXPECT_EQ(p.concurrency, (ConcurrencyPolicy{100, 5}));
  EXPECT_EQ(p.hedge, (HedgePolicy{40ms, 2}));
  EXPECT_EQ(Get(config, "default"), ferry::config::Policy{"default"});
}

TEST(PolicyConfig, APolicyKeepsTheDefaultsItDoesNotWrite) {
  auto config = Load(Policy1("    retry: {attempts: 3}\n"));
  const Policy& p = Get(config, "p");
  ferry::config::Policy expected{"p"};
  expected.retry.attempts = 3;
  EXPECT_EQ(p, expected);
}

TEST(PolicyConfig, APolicyIsTheWrittenDefaultWithItsOwnFieldsReplaced) {
  auto config = Load(R"(policies:
  default:
    timeout: 5s
    retry: {on: [reset, 503], budget: {ratio: 10%}}
    circuit_breaker: {min_requests: 50}
  standard:
    retry: {attempts: 4, budget: {min_per_second: 1}}
    circuit_breaker: {open_for: 1s}
    outlier_detection: false
)");
  const Policy& d = Get(config, "default");
  EXPECT_EQ(d.timeout, 5s);
  EXPECT_EQ(d.retry.on, std::vector<RetryCondition>{RetryCondition::kReset});
  EXPECT_EQ(d.retry.on_status, std::vector<int>{503});
  ASSERT_TRUE(d.circuit_breaker);
  EXPECT_EQ(d.circuit_breaker->min_requests, 50u);
  const Policy& s = Get(config, "standard");
  EXPECT_EQ(s.name, "standard");
  EXPECT_EQ(s.timeout, 5s);
  EXPECT_EQ(s.retry.attempts, 4u);
  EXPECT_EQ(s.retry.on, d.retry.on);
  EXPECT_EQ(s.retry.on_status, d.retry.on_status);
  EXPECT_DOUBLE_EQ(s.retry.budget.ratio, 0.1);
  EXPECT_EQ(s.retry.budget.min_per_second, 1u);
  EXPECT_EQ(s.retry.backoff.initial, 25ms);
  ASSERT_TRUE(s.circuit_breaker);
  EXPECT_EQ(s.circuit_breaker->min_requests, 50u);  // the default's, key by key
  EXPECT_EQ(s.circuit_breaker->open_for, 1s);
  EXPECT_FALSE(s.outlier_detection);
  EXPECT_TRUE(d.outlier_detection);
}

TEST(PolicyConfig, BlocksSwitchOnWithTheirDefaultsAndOffWithFalse) {
  auto config =
      Load(Policy1("    circuit_breaker: {}\n    hedge: {}\n    concurrency: {}\n"
                   "    outlier_detection: false\n"));
  const Policy& p = Get(config, "p");
  EXPECT_EQ(p.circuit_breaker, CircuitBreakerPolicy{});
  EXPECT_EQ(p.hedge, HedgePolicy{});
  EXPECT_EQ(p.concurrency, ConcurrencyPolicy{});
  EXPECT_FALSE(p.outlier_detection);
  auto off = Load("policies:\n  default: {circuit_breaker: {}}\n  q: {circuit_breaker: false}\n");
  EXPECT_TRUE(Get(off, "default").circuit_breaker);
  EXPECT_FALSE(Get(off, "q").circuit_breaker);
}

TEST(PolicyConfig, RetryOnMayBeEmpty) {
  const Policy& p = Get(Load(Policy1("    retry: {on: []}\n")), "p");
  EXPECT_TRUE(p.retry.on.empty());
  EXPECT_TRUE(p.retry.on_status.empty());
}

TEST(PolicyConfig, ZeroTimeoutsMeanNone) {
  const Policy& p = Get(Load(Policy1("    timeout: 0\n    try_timeout: 1s\n")), "p");
  EXPECT_EQ(p.timeout, 0s);
  EXPECT_EQ(p.try_timeout, 1s);
}

// --- Policies attached to services and routes ---------------------------------------------------

TEST(PolicyConfig, ARouteTakesItsOwnPolicyElseItsServicesElseTheDefault) {
  auto config = Load(R"(policies:
  fast: {timeout: 1s}
  slow: {timeout: 1m}
listeners:
  - name: w
    listen: 127.0.0.1:0
    routes:
      - {service: a, policy: fast}
      - {service: a}
      - {service: b}
      - {service: a, timeout: 3s}
      - {service: b, policy: default}
services:
  a: {endpoints: [127.0.0.1:1], policy: slow}
  b: {endpoints: [127.0.0.1:2]}
)");
  const auto& routes = config->listeners.at(0).routes;
  EXPECT_EQ(routes[0].policy, "fast");
  EXPECT_EQ(routes[0].timeout, 1s);
  EXPECT_EQ(routes[1].policy, "slow");
  EXPECT_EQ(routes[1].timeout, 1min);
  EXPECT_EQ(routes[2].policy, "default");
  EXPECT_EQ(routes[2].timeout, 15s);
  EXPECT_EQ(routes[3].policy, "slow");
  EXPECT_EQ(routes[3].timeout, 3s);  // the route's written timeout wins
  EXPECT_EQ(routes[4].policy, "default");
  EXPECT_EQ(config->services.at("a").policy, "slow");
  EXPECT_EQ(config->services.at("b").policy, "default");
}

TEST(PolicyConfig, ARouteFollowsAChangedDefaultTimeout) {
  auto config = Load("policies:\n  default: {timeout: 4s}\n" + Route1(""));
  EXPECT_EQ(FirstRoute(config).policy, "default");
  EXPECT_EQ(FirstRoute(config).timeout, 4s);
}

TEST(PolicyConfigErrors, UnknownPolicyOfARouteAndOfAService) {
  EXPECT_EQ(Errors(R"(policies:
  fast: {}
listeners:
  - name: w
    listen: 127.0.0.1:0
    routes:
      - {service: a, policy: quick}
services:
  a: {endpoints: [127.0.0.1:1], policy: slow}
)"),
            "t.yaml:7:30: listeners[0].routes[0].policy: unknown policy 'quick' (defined "
            "policies: default, fast)\n"
            "t.yaml:9:41: services.a.policy: unknown policy 'slow' (defined policies: default, "
            "fast)");
}

TEST(PolicyConfigErrors, InvalidPolicyName) {
  EXPECT_EQ(Errors("policies:\n  -p: {}\n"),
            "t.yaml:2:3: policies: invalid policy name '-p': use letters, digits, '_', '.' and "
            "'-', starting with a letter or digit");
}

TEST(PolicyConfigErrors, UnknownPolicyKey) {
  EXPECT_EQ(Errors(Policy1("    retries: 3\n")),
            "t.yaml:3:5: policies.p: unknown key 'retries' (expected one of: timeout, "
            "try_timeout, retry, circuit_breaker, outlier_detection, concurrency, hedge)");
}

TEST(PolicyConfigErrors, TryTimeoutNotBelowTimeout) {
  EXPECT_EQ(Errors(Policy1("    timeout: 1s\n    try_timeout: 1s\n")),
            "t.yaml:4:18: policies.p.try_timeout: try_timeout (1s) must be less than timeout "
            "(1s)");
  EXPECT_EQ(Errors("policies:\n  default: {try_timeout: 2s}\n  p: {timeout: 1s}\n"),
            "t.yaml:3:16: policies.p.timeout: try_timeout (2s, from the default policy) must be "
            "less than timeout (1s)");
  EXPECT_EQ(Errors("policies:\n  default: {try_timeout: 20s}\n"),
            "t.yaml:2:26: policies.default.try_timeout: try_timeout (20s) must be less than "
            "timeout (15s, the default)");
}

TEST(PolicyConfigErrors, AttemptsOutOfRange) {
  EXPECT_EQ(Errors(Policy1("    retry: {attempts: 11}\n")),
            "t.yaml:3:23: policies.p.retry.attempts: must be an integer between 1 and 10, got 11");
  EXPECT_EQ(Errors(Policy1("    retry: {attempts: 0}\n")),
            "t.yaml:3:23: policies.p.retry.attempts: must be an integer between 1 and 10, got 0");
}

TEST(PolicyConfigErrors, RetryCannotBeSwitchedOff) {
  EXPECT_EQ(Errors(Policy1("    retry: false\n")),
            "t.yaml:3:12: policies.p.retry: retry cannot be switched off; write retry: "
            "{attempts: 1} for no retries");
}

TEST(PolicyConfig, RetryOnTakesGrpcStatusNames) {
  auto config = Load(Policy1("    retry: {on: [reset, 503, unavailable, resource_exhausted]}\n"));
  const RetryPolicy& retry = config->policies.at("p").retry;
  EXPECT_EQ(retry.on, std::vector<RetryCondition>{RetryCondition::kReset});
  EXPECT_EQ(retry.on_status, std::vector<int>{503});
  EXPECT_EQ(retry.on_grpc, (std::vector<int>{14, 8}));
  EXPECT_EQ(Load(Policy1("    retry: {attempts: 2}\n"))->policies.at("p").retry.on_grpc,
            std::vector<int>{14});  // UNAVAILABLE by default
  EXPECT_EQ(Errors(Policy1("    retry: {on: [unavailable, unavailable]}\n")),
            "t.yaml:3:31: policies.p.retry.on[1]: 'unavailable' is listed twice");
}

TEST(PolicyConfigErrors, RetryOnUnknownConditionAndStatus) {
  EXPECT_EQ(Errors(Policy1("    retry: {on: [refused, 404, \"502\", reset, reset, 503, 503]}\n")),
            "t.yaml:3:18: policies.p.retry.on[0]: unknown retry condition 'refused' (expected "
            "connect_failure, reset, try_timeout, or an unquoted status code: 429 or 500-599"
            "), or gRPC status name (cancelled, unknown, invalid_argument, "
            "deadline_exceeded, not_found, already_exists, permission_denied, resource_exhausted, "
            "failed_precondition, aborted, out_of_range, unimplemented, internal, unavailable, "
            "data_loss, unauthenticated)\n"
            "t.yaml:3:27: policies.p.retry.on[1]: status 404 is not retried: use 429 or 500-599\n"
            "t.yaml:3:32: policies.p.retry.on[2]: unknown retry condition '502' (expected "
            "connect_failure, reset, try_timeout, or an unquoted status code: 429 or 500-599"
            "), or gRPC status name (cancelled, unknown, invalid_argument, "
            "deadline_exceeded, not_found, already_exists, permission_denied, resource_exhausted, "
            "failed_precondition, aborted, out_of_range, unimplemented, internal, unavailable, "
            "data_loss, unauthenticated)\n"
            "t.yaml:3:46: policies.p.retry.on[4]: 'reset' is listed twice\n"
            "t.yaml:3:58: policies.p.retry.on[6]: status 503 is listed twice");
}

TEST(PolicyConfigErrors, RetryBackoffFollowsTheBusRules) {
  EXPECT_EQ(Errors(Policy1("    retry: {backoff: {initial: 2s}}\n")),
            "t.yaml:3:32: policies.p.retry.backoff.initial: max (1s, the default) must be at "
            "least initial (2s)");
  EXPECT_EQ(Errors(Policy1("    retry: {backoff: {multiplier: 0.5}}\n")),
            "t.yaml:3:35: policies.p.retry.backoff.multiplier: must be a number of at least 1, "
            "got 0.5");
}

TEST(PolicyConfigErrors, BudgetRatioOutOfRange) {
  EXPECT_EQ(Errors(Policy1("    retry: {budget: {ratio: 120%}}\n")),
            "t.yaml:3:29: policies.p.retry.budget.ratio: invalid ratio '120%': must be between "
            "0% and 100%");
}

TEST(PolicyConfigErrors, ReplayBodyTooLarge) {
  EXPECT_EQ(Errors(Policy1("    retry: {replay_body_bytes: 65MiB}\n")),
            "t.yaml:3:32: policies.p.retry.replay_body_bytes: size 65MiB is larger than the "
            "maximum 67108864 bytes");
}

TEST(PolicyConfigErrors, BlockIsNeitherAMapNorFalse) {
  EXPECT_EQ(Errors(Policy1("    circuit_breaker: true\n")),
            "t.yaml:3:22: policies.p.circuit_breaker: expected a map, or false to switch it off");
}

TEST(PolicyConfigErrors, ZeroFailureRatio) {
  EXPECT_EQ(Errors(Policy1("    circuit_breaker: {failure_ratio: 0%}\n")),
            "t.yaml:3:38: policies.p.circuit_breaker.failure_ratio: must be greater than 0% (use "
            "circuit_breaker: false to switch it off)");
}

TEST(PolicyConfigErrors, MaxEjectionBelowBaseEjection) {
  EXPECT_EQ(Errors(Policy1("    outlier_detection: {base_ejection: 10m}\n")),
            "t.yaml:3:40: policies.p.outlier_detection.base_ejection: max_ejection (5m, the "
            "default) must be at least base_ejection (10m)");
}

TEST(PolicyConfigErrors, HedgeLimits) {
  EXPECT_EQ(Errors(Policy1("    hedge: {after: 0, max_extra: 4}\n")),
            "t.yaml:3:20: policies.p.hedge.after: must be greater than 0\n"
            "t.yaml:3:34: policies.p.hedge.max_extra: must be an integer between 1 and 3, got 4");
}

TEST(PolicyConfigErrors, UnknownKeyInABlock) {
  EXPECT_EQ(Errors(Policy1("    concurrency: {limit: 5}\n")),
            "t.yaml:3:19: policies.p.concurrency: unknown key 'limit' (expected one of: max, "
            "queue)");
}

// --- Service health checks -----------------------------------------------------------------------

TEST(HealthConfig, DefaultsAndEveryKey) {
  auto config = Load(R"(services:
  a: {endpoints: [127.0.0.1:1], health: {}}
  b:
    endpoints: [127.0.0.1:2]
    health: {path: /ready, interval: 5s, timeout: 2s, unhealthy_after: 1, healthy_after: 4}
  c: {endpoints: [127.0.0.1:3]}
)");
  EXPECT_EQ(config->services.at("a").health, HealthCheck{});
  EXPECT_EQ(config->services.at("b").health, (HealthCheck{"/ready", 5s, 2s, 1, 4}));
  EXPECT_FALSE(config->services.at("c").health);
}

TEST(HealthConfigErrors, TimeoutNotBelowIntervalAndBadPath) {
  EXPECT_EQ(Errors("services:\n  a: {endpoints: [127.0.0.1:1], health: {interval: 1s, path: x}}\n"),
            "t.yaml:2:52: services.a.health.interval: timeout (1s, the default) must be less "
            "than interval (1s)\n"
            "t.yaml:2:62: services.a.health.path: must start with '/', got 'x'");
}

// --- Route keys ----------------------------------------------------------------------------------

TEST(RouteResilienceConfig, NoneByDefault) {
  const Route& route = FirstRoute(Load(Route1("")));
  EXPECT_FALSE(route.retry_with_idempotency_key);
  EXPECT_FALSE(route.rate_limit);
  EXPECT_FALSE(route.fault);
  EXPECT_FALSE(route.idempotency);
}

TEST(RouteResilienceConfig, RateLimitWithoutByIsOneBucket) {
  const Route& route = FirstRoute(Load(Route1("        rate_limit: {rps: 2.5}\n")));
  ASSERT_TRUE(route.rate_limit);
  EXPECT_EQ(route.rate_limit->rps, 2.5);
  EXPECT_EQ(route.rate_limit->burst, 3u);  // ceil(rps)
  EXPECT_FALSE(route.rate_limit->per_key);
  const Route& slow = FirstRoute(Load(Route1("        rate_limit: {rps: 0.1}\n")));
  EXPECT_EQ(slow.rate_limit->burst, 1u);
}

TEST(RouteResilienceConfig, RateLimitByClientAddressOrHeader) {
  const Route& a =
      FirstRoute(Load(Route1("        rate_limit: {rps: 5, burst: 20, by: client_address}\n")));
  EXPECT_EQ(a.rate_limit->burst, 20u);
  EXPECT_TRUE(a.rate_limit->per_key);
  EXPECT_EQ(a.rate_limit->by.kind, RateLimit::By::Kind::kClientAddress);
  const Route& h = FirstRoute(Load(Route1("        rate_limit: {rps: 5, by: {header: X-Key}}\n")));
  EXPECT_TRUE(h.rate_limit->per_key);
  EXPECT_EQ(h.rate_limit->by.kind, RateLimit::By::Kind::kHeader);
  EXPECT_EQ(h.rate_limit->by.header, "x-key");
}

TEST(RouteResilienceConfig, FaultAndRetryWithIdempotencyKey) {
  const Route& route = FirstRoute(Load(Route1(R"(        retry_with_idempotency_key: true
        fault:
          abort: {status: 500, percent: 12.5}
          delay: {duration: 100ms}
)")));
  EXPECT_TRUE(route.retry_with_idempotency_key);
  ASSERT_TRUE(route.fault && route.fault->abort && route.fault->delay);
  EXPECT_EQ(route.fault->abort->status, 500);
  EXPECT_EQ(route.fault->abort->percent, 12.5);
  EXPECT_EQ(route.fault->delay->duration, 100ms);
  EXPECT_EQ(route.fault->delay->percent, 100);
  const Route& abort_only = FirstRoute(Load(Route1("        fault: {abort: {}}\n")));
  EXPECT_EQ(abort_only.fault->abort->status, 503);
  EXPECT_FALSE(abort_only.fault->delay);
}

TEST(RouteResilienceConfig, IdempotencyWithAStore) {
  auto config =
      Load(Route1("        idempotency: {}\n") + "idempotency_store: {data_dir: /var/idem}\n");
  const Route& route = FirstRoute(config);
  ASSERT_TRUE(route.idempotency);
  EXPECT_EQ(route.idempotency->ttl, 24h);
  EXPECT_EQ(route.idempotency->max_response_bytes, 1024u * 1024);
  EXPECT_EQ(route.idempotency->header, "idempotency-key");
  ASSERT_TRUE(config->idempotency_store);
  EXPECT_EQ(config->idempotency_store->data_dir, "/var/idem");
  EXPECT_FALSE(config->idempotency_store->redis);
  auto redis = Load(
      Route1("        idempotency: {ttl: 1h, max_response_bytes: 64KiB, header: X-Request-Key}\n") +
      "idempotency_store: {redis: redis.internal:6379}\n");
  EXPECT_EQ(FirstRoute(redis).idempotency->ttl, 1h);
  EXPECT_EQ(FirstRoute(redis).idempotency->max_response_bytes, 64u * 1024);
  EXPECT_EQ(FirstRoute(redis).idempotency->header, "x-request-key");
  ASSERT_TRUE(redis->idempotency_store->redis);
  EXPECT_EQ(redis->idempotency_store->redis->ToString(), "redis.internal:6379");
  EXPECT_TRUE(redis->idempotency_store->data_dir.empty());
}

TEST(RouteResilienceConfigErrors, IdempotencyWithoutAStore) {
  EXPECT_EQ(Errors(Route1("        idempotency: {ttl: 1h}\n")),
            "t.yaml:6:22: listeners[0].routes[0].idempotency: idempotency needs a top-level "
            "idempotency_store: {data_dir: DIR} or {redis: HOST:PORT}");
}

TEST(RouteResilienceConfigErrors, IdempotencyStoreNeedsExactlyOneBackend) {
  EXPECT_EQ(Errors("idempotency_store: {}\n"),
            "t.yaml:1:20: idempotency_store: needs data_dir: DIR (embedded) or redis: HOST:PORT");
  EXPECT_EQ(Errors("idempotency_store: {data_dir: /d, redis: 127.0.0.1:6379}\n"),
            "t.yaml:1:42: idempotency_store.redis: data_dir and redis are exclusive: the store is "
            "either embedded or Redis");
  EXPECT_EQ(Errors("idempotency_store: {redis: 127.0.0.1}\n"),
            "t.yaml:1:28: idempotency_store.redis: invalid address '127.0.0.1': expected "
            "host:port");
}

TEST(RouteResilienceConfigErrors, InvalidStoreIsReportedOnceNotOnEveryRoute) {
  EXPECT_EQ(Errors(Route1("        idempotency: {}\n") + "idempotency_store: {data_dir: \"\"}\n"),
            "t.yaml:9:31: idempotency_store.data_dir: must not be empty");
}

TEST(RouteResilienceConfigErrors, RateLimitRules) {
  EXPECT_EQ(Errors(Route1("        rate_limit: {burst: 0, by: {header: \"a b\"}}\n")),
            "t.yaml:6:21: listeners[0].routes[0].rate_limit: missing required key 'rps'\n"
            "t.yaml:6:29: listeners[0].routes[0].rate_limit.burst: must be an integer between 1 "
            "and 4294967295, got 0\n"
            "t.yaml:6:45: listeners[0].routes[0].rate_limit.by.header: invalid header name 'a b'");
  EXPECT_EQ(Errors(Route1("        rate_limit: {rps: 0, by: address}\n")),
            "t.yaml:6:27: listeners[0].routes[0].rate_limit.rps: must be greater than 0 and at "
            "most 1e+09, got 0\n"
            "t.yaml:6:34: listeners[0].routes[0].rate_limit.by: by must be client_address or "
            "{header: NAME}, got 'address'");
}

TEST(RouteResilienceConfigErrors, FaultRules) {
  EXPECT_EQ(Errors(Route1("        fault: {}\n")),
            "t.yaml:6:16: listeners[0].routes[0].fault: a fault needs abort, delay or both");
  EXPECT_EQ(Errors(Route1("        fault: {abort: {status: 99, percent: 101}, delay: {}}\n")),
            "t.yaml:6:33: listeners[0].routes[0].fault.abort.status: must be an integer between "
            "200 and 599, got 99\n"
            "t.yaml:6:46: listeners[0].routes[0].fault.abort.percent: must be a percentage from 0 "
            "to 100, got 101\n"
            "t.yaml:6:59: listeners[0].routes[0].fault.delay: missing required key 'duration'");
}

// --- Trusted networks
// ------------------------------------------------------------------------------

TEST(TrustConfig, NetworksAreRead) {
  auto config = Load(R"(listeners:
  - name: w
    listen: 127.0.0.1:0
    trust_deadline_from: [10.0.0.0/8, "::1", 192.168.1.7/24]
)");
  const auto& nets = config->listeners.at(0).trust_deadline_from;
  ASSERT_EQ(nets.size(), 3u);
  EXPECT_EQ(nets[0].text, "10.0.0.0/8");
  EXPECT_TRUE(nets[1].v6);
  EXPECT_EQ(nets[1].prefix, 128);
  EXPECT_TRUE(nets[2].Contains("192.168.1.200"));
  EXPECT_TRUE(Load("listeners: [{name: w, listen: 127.0.0.1:0}]\n")
                  ->listeners.at(0)
                  .trust_deadline_from.empty());
}

TEST(TrustConfigErrors, InvalidAndRepeatedNetworks) {
  EXPECT_EQ(Errors(R"(listeners:
  - name: w
    listen: 127.0.0.1:0
    trust_deadline_from: [10.0.0.0/33, 10.1.2.3/8, 10.0.0.0/8, host.internal]
)"),
            "t.yaml:4:27: listeners[0].trust_deadline_from[0]: invalid network '10.0.0.0/33': the "
            "prefix length must be 0-32\n"
            "t.yaml:4:52: listeners[0].trust_deadline_from[2]: network '10.0.0.0/8' is listed "
            "twice (as '10.1.2.3/8' before)\n"
            "t.yaml:4:64: listeners[0].trust_deadline_from[3]: invalid network 'host.internal': "
            "'host.internal' is not an IP address");
}

// --- GET /config ---------------------------------------------------------------------------------

TEST(PolicyToJson, EveryResilienceKeyRoundTrips) {
  auto config = Load(R"(policies:
  default: {timeout: 5s, outlier_detection: false}
  standard:
    try_timeout: 500ms
    retry: {attempts: 3, on: [reset, 504], budget: {ratio: 12.5%}}
    circuit_breaker: {failure_ratio: 0.5}
    concurrency: {max: 10}
    hedge: {after: 50ms}
listeners:
  - name: w
    listen: 127.0.0.1:0
    trust_deadline_from: [10.0.0.0/8]
    routes:
      - service: a
        policy: standard
        retry_with_idempotency_key: true
        rate_limit: {rps: 1.5, by: {header: X-K}}
        fault: {abort: {status: 500, percent: 0.5}, delay: {duration: 1s, percent: 50}}
        idempotency: {ttl: 1h}
services:
  a: {endpoints: [127.0.0.1:1], policy: standard, health: {path: /h}}
idempotency_store: {redis: "[::1]:6379"}
)");
  const std::string json = ToJson(*config);
  for (const char* part : {
           R"("default":{"timeout":"5s","try_timeout":"0s","retry":{"attempts":2,)"
           R"("backoff":{"initial":"25ms","max":"1s","multiplier":2},)"
           R"("on":["connect_failure","reset",502,503,"unavailable"],)"
           R"("budget":{"ratio":"20%","min_per_second":10},"replay_body_bytes":65536},)"
           R"("circuit_breaker":false,"outlier_detection":false,"concurrency":false,)"
           R"("hedge":false})",
           R"("circuit_breaker":{"failure_ratio":"50%","min_requests":20,"window":"10s",)"
           R"("open_for":"5s","half_open_requests":1})",
           R"("budget":{"ratio":"12.5%","min_per_second":10})",
           R"("concurrency":{"max":10,"queue":100},"hedge":{"after":"50ms","max_extra":1})",
           R"("trust_deadline_from":["10.0.0.0/8"])",
           R"("timeout":"5s","policy":"standard","retry_with_idempotency_key":true,)",
           R"("rate_limit":{"rps":1.5E0,"burst":2,"by":{"header":"x-k"}})",
           R"("fault":{"abort":{"status":500,"percent":5E-1},)"
           R"("delay":{"duration":"1s","percent":50}})",
           R"("idempotency":{"ttl":"1h","max_response_bytes":1048576,)"
           R"("header":"idempotency-key"})",
           R"("policy":"standard","health":{"path":"/h","interval":"10s","timeout":"1s",)"
           R"("unhealthy_after":3,"healthy_after":2})",
           R"("idempotency_store":{"redis":"[::1]:6379"})",
       }) {
    EXPECT_NE(json.find(part), std::string::npos) << part << "\n" << json;
  }
  auto again = LoadString(json, "effective.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(ToJson(**again), json);
  EXPECT_EQ((*again)->policies, config->policies);
}

}  // namespace
}  // namespace ferry::config
