// ToJson: the effective config as JSON, for the admin API's `GET /config`. The
// output uses the config file's own keys and units, so it loads back as an equal config.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <cmath>

#include "config/config.hpp"
#include "config/grpc_loader.hpp"

namespace ferry::config {
namespace {

namespace json = boost::json;

json::string Text(const Duration& d) { return json::string(FormatDuration(d)); }

std::string_view LbName(LbPolicy lb) {
  switch (lb) {
    case LbPolicy::kRoundRobin:
      return "round_robin";
    case LbPolicy::kLeastRequest:
      return "least_request";
    case LbPolicy::kRandom:
      return "random";
    case LbPolicy::kHash:
      return "hash";
  }
  return "round_robin";
}

json::object LimitsJson(const Limits& limits) {
  return {{"max_header_bytes", limits.max_header_bytes},
          {"max_headers", limits.max_headers},
          {"max_body_bytes", limits.max_body_bytes},
          {"header_read_timeout", Text(limits.header_read_timeout)},
          {"idle_timeout", Text(limits.idle_timeout)},
          {"request_timeout", Text(limits.request_timeout)},
          {"max_concurrent_streams", limits.max_concurrent_streams},
          {"stream_reset_burst", limits.stream_reset_burst},
          {"stream_reset_rate", limits.stream_reset_rate}};
}

json::object MatchJson(const RouteMatch& match) {
  json::object out;
  if (match.prefix) out["prefix"] = *match.prefix;
  if (match.path) out["path"] = *match.path;
  if (match.host) out["host"] = *match.host;
  if (!match.methods.empty()) {
    json::array methods;
    for (const auto& m : match.methods) methods.emplace_back(m);
    out["methods"] = std::move(methods);
  }
  if (!match.headers.empty()) {
    json::object headers;
    for (const auto& [name, value] : match.headers) headers[name] = value;
    out["headers"] = std::move(headers);
  }
  return out;
}

// Boost.JSON writes every double with an exponent ("2E0"): write whole numbers as integers.
json::value Number(double value) {
  if (std::trunc(value) == value && std::abs(value) < 1e15) {
    return static_cast<std::int64_t>(value);
  }
  return value;
}

// Ratios as the file writes them: "20%".
json::string Percent(double ratio) { return json::string(fmt::format("{:.6g}%", ratio * 100)); }

json::value KeyJson(bool header, const std::string& name) {
  if (header) return json::object{{"header", name}};
  return "client_address";
}

json::object RateLimitJson(const RateLimit& limit) {
  json::object out{{"rps", Number(limit.rps)}, {"burst", limit.burst}};
  if (limit.per_key) {
    out["by"] = KeyJson(limit.by.kind == RateLimit::By::Kind::kHeader, limit.by.header);
  }
  return out;
}

json::object FaultJson(const Fault& fault) {
  json::object out;
  if (fault.abort) {
    out["abort"] =
        json::object{{"status", fault.abort->status}, {"percent", Number(fault.abort->percent)}};
  }
  if (fault.delay) {
    out["delay"] = json::object{{"duration", Text(fault.delay->duration)},
                                {"percent", Number(fault.delay->percent)}};
  }
  return out;
}

// A provider as written; secret_file shows its path only (the secret is never in the config).
json::object JwtProviderJson(const JwtProvider& provider) {
  json::array audiences(provider.audiences.begin(), provider.audiences.end());
  json::object out{{"issuer", provider.issuer},
                   {"audiences", std::move(audiences)},
                   {"clock_skew", Text(provider.clock_skew)},
                   {"jwks_refresh", Text(provider.jwks_refresh)}};
  if (!provider.jwks.empty()) out["jwks"] = provider.jwks;
  if (!provider.jwks_ca.empty()) out["jwks_ca"] = provider.jwks_ca;
  if (!provider.algorithms.empty()) {
    out["algorithms"] = json::array(provider.algorithms.begin(), provider.algorithms.end());
  }
  if (!provider.secret_file.empty()) out["secret_file"] = provider.secret_file;
  if (!provider.cookie.empty()) out["cookie"] = provider.cookie;
  json::object forward;
  for (const auto& [claim, header] : provider.forward_claims) forward[claim] = header;
  out["forward_claims"] = std::move(forward);
  return out;
}

json::array Strings(const std::vector<std::string>& values) {
  json::array out;
  for (const std::string& v : values) out.emplace_back(v);
  return out;
}

// The keys' names only: a hash is not the key, but nothing about a key is the page's business.
json::object ApiKeysJson(const ApiKeys& keys) {
  json::array names;
  for (const ApiKey& key : keys.keys) names.emplace_back(json::object{{"name", key.name}});
  return json::object{{"header", keys.header}, {"keys", std::move(names)}};
}

json::object CorsJson(const Cors& cors) {
  return json::object{{"allow_origins", Strings(cors.allow_origins)},
                      {"allow_methods", Strings(cors.allow_methods)},
                      {"allow_headers", Strings(cors.allow_headers)},
                      {"expose_headers", Strings(cors.expose_headers)},
                      {"allow_credentials", cors.allow_credentials},
                      {"max_age", Text(cors.max_age)}};
}

json::object AuthorizationJson(const Authorization& authorization) {
  json::array rules;
  for (const AuthzRule& rule : authorization.rules) {
    json::object body;
    if (!rule.callers.empty()) body["callers"] = Strings(rule.callers);
    if (!rule.routes.empty()) body["routes"] = Strings(rule.routes);
    if (!rule.paths.empty()) body["paths"] = Strings(rule.paths);
    if (!rule.methods.empty()) body["methods"] = Strings(rule.methods);
    if (!rule.claims.empty()) {
      json::object claims;
      for (const auto& [name, value] : rule.claims) claims[name] = value;
      body["claims"] = std::move(claims);
    }
    rules.emplace_back(json::object{{rule.allow ? "allow" : "deny", std::move(body)}});
  }
  return json::object{{"default", authorization.default_allow ? "allow" : "deny"},
                      {"rules", std::move(rules)}};
}

json::object RouteJson(const Route& route) {
  json::object out{
      {"name", route.name},       {"match", MatchJson(route.match)},
      {"service", route.service}, {"timeout", Text(route.timeout)},
      {"policy", route.policy},   {"retry_with_idempotency_key", route.retry_with_idempotency_key}};
  if (!route.topic.empty()) {
    out.erase("service");
    out["topic"] = route.topic;
    out["push"] = json::object{{"heartbeat", Text(route.push.heartbeat)},
                               {"retry", Text(route.push.retry)},
                               {"buffer_bytes", route.push.buffer_bytes}};
  }
  out["stream_idle_timeout"] = Text(route.stream_idle_timeout);
  out["max_stream_duration"] = Text(route.max_stream_duration);
  if (route.rewrite_prefix) out["rewrite_prefix"] = *route.rewrite_prefix;
  if (route.rate_limit) out["rate_limit"] = RateLimitJson(*route.rate_limit);
  if (route.fault) out["fault"] = FaultJson(*route.fault);
  if (route.auth) out["auth"] = json::object{{"jwt", route.auth->jwt}};
  if (route.idempotency) {
    out["idempotency"] = json::object{{"ttl", Text(route.idempotency->ttl)},
                                      {"max_response_bytes", route.idempotency->max_response_bytes},
                                      {"header", route.idempotency->header}};
  }
  if (route.api_keys) out["api_keys"] = ApiKeysJson(*route.api_keys);
  if (route.cors) out["cors"] = CorsJson(*route.cors);
  if (route.grpc) {
    out["grpc"] = json::object{{"idempotent", Strings(route.grpc->idempotent)},
                               {"max_message_bytes", route.grpc->max_message_bytes}};
  }
  return out;
}

std::string_view ConditionName(RetryCondition condition) {
  switch (condition) {
    case RetryCondition::kConnectFailure:
      return "connect_failure";
    case RetryCondition::kReset:
      return "reset";
    case RetryCondition::kTryTimeout:
      return "try_timeout";
  }
  return "reset";
}

json::object RetryJson(const RetryPolicy& retry) {
  json::array on;
  for (RetryCondition c : retry.on) on.emplace_back(ConditionName(c));
  for (int status : retry.on_status) on.emplace_back(status);
  for (int status : retry.on_grpc) on.emplace_back(internal::GrpcStatusName(status));
  return {{"attempts", retry.attempts},
          {"backoff", json::object{{"initial", Text(retry.backoff.initial)},
                                   {"max", Text(retry.backoff.max)},
                                   {"multiplier", Number(retry.backoff.multiplier)}}},
          {"on", std::move(on)},
          {"budget", json::object{{"ratio", Percent(retry.budget.ratio)},
                                  {"min_per_second", retry.budget.min_per_second}}},
          {"replay_body_bytes", retry.replay_body_bytes}};
}

// A block switched off shows as false, as the file would write it.
template <typename T, typename ToJson>
json::value Switchable(const std::optional<T>& block, ToJson to_json) {
  if (!block) return false;
  return to_json(*block);
}

json::object PolicyJson(const Policy& policy) {
  return {{"timeout", Text(policy.timeout)},
          {"try_timeout", Text(policy.try_timeout)},
          {"retry", RetryJson(policy.retry)},
          {"circuit_breaker", Switchable(policy.circuit_breaker,
                                         [](const CircuitBreakerPolicy& b) {
                                           return json::object{
                                               {"failure_ratio", Percent(b.failure_ratio)},
                                               {"min_requests", b.min_requests},
                                               {"window", Text(b.window)},
                                               {"open_for", Text(b.open_for)},
                                               {"half_open_requests", b.half_open_requests}};
                                         })},
          {"outlier_detection", Switchable(policy.outlier_detection,
                                           [](const OutlierDetectionPolicy& o) {
                                             return json::object{
                                                 {"consecutive_failures", o.consecutive_failures},
                                                 {"base_ejection", Text(o.base_ejection)},
                                                 {"max_ejection", Text(o.max_ejection)},
                                                 {"max_ejected", Percent(o.max_ejected)}};
                                           })},
          {"concurrency", Switchable(policy.concurrency,
                                     [](const ConcurrencyPolicy& c) {
                                       return json::object{{"max", c.max}, {"queue", c.queue}};
                                     })},
          {"hedge", Switchable(policy.hedge, [](const HedgePolicy& h) {
             return json::object{{"after", Text(h.after)}, {"max_extra", h.max_extra}};
           })}};
}

// A service's tls: "mesh" or its map (paths and public pins: nothing to redact).
json::value ServiceTlsJson(const ServiceTls& tls) {
  if (tls.mesh) return "mesh";
  json::object out{{"min_version", tls.min_version == TlsVersion::k1_3 ? "1.3" : "1.2"}};
  if (!tls.ca.empty()) out["ca"] = tls.ca;
  if (!tls.server_name.empty()) out["server_name"] = tls.server_name;
  if (!tls.pin_sha256.empty()) {
    json::array pins;
    for (const auto& pin : tls.pin_sha256) pins.emplace_back(pin);
    out["pin_sha256"] = std::move(pins);
  }
  if (tls.client_certificate) {
    out["client_certificate"] =
        json::object{{"cert", tls.client_certificate->cert}, {"key", tls.client_certificate->key}};
  }
  return out;
}

const char* UpstreamProtocolName(UpstreamProtocol protocol) {
  switch (protocol) {
    case UpstreamProtocol::kHttp1:
      return "http1";
    case UpstreamProtocol::kHttp2:
      return "http2";
    case UpstreamProtocol::kAuto:
      return "auto";
  }
  return "http1";
}

json::object ServiceJson(const Service& service) {
  json::array endpoints;
  for (const auto& e : service.endpoints) endpoints.emplace_back(e.ToString());
  json::object out{{"endpoints", std::move(endpoints)},
                   {"lb", LbName(service.lb)},
                   {"connect_timeout", Text(service.connect_timeout)},
                   {"max_connections_per_endpoint", service.max_connections_per_endpoint},
                   {"pool_idle_timeout", Text(service.pool_idle_timeout)},
                   {"resolve_interval", Text(service.resolve_interval)}};
  if (service.lb == LbPolicy::kHash) {
    out["hash_on"] = KeyJson(service.hash_on.kind == HashOn::Kind::kHeader, service.hash_on.header);
  }
  out["policy"] = service.policy;
  if (service.health) {
    const HealthCheck& h = *service.health;
    json::object health;
    if (h.grpc_service) {
      health["grpc"] = json::object{{"service", *h.grpc_service}};
    } else {
      health["path"] = h.path;
    }
    health["interval"] = Text(h.interval);
    health["timeout"] = Text(h.timeout);
    health["unhealthy_after"] = h.unhealthy_after;
    health["healthy_after"] = h.healthy_after;
    out["health"] = std::move(health);
  }
  if (service.tls) out["tls"] = ServiceTlsJson(*service.tls);
  out["protocol"] = UpstreamProtocolName(service.protocol);
  if (service.protocol != UpstreamProtocol::kHttp1) {
    out["http2"] =
        json::object{{"max_streams_per_connection", service.http2.max_streams_per_connection},
                     {"keepalive_interval", Text(service.http2.keepalive_interval)}};
  }
  return out;
}

json::object PushJson(const BusPush& push) {
  return {{"service", push.service},
          {"path", push.path},
          {"timeout", Text(push.timeout)},
          {"concurrency", push.concurrency}};
}

// A queue's and a subscription's delivery keys sit flat in their own map, as in the file.
void AddDelivery(const BusDelivery& delivery, json::object& out) {
  out["lease"] = Text(delivery.lease);
  out["max_deliveries"] = delivery.max_deliveries;
  out["backoff"] = json::object{{"initial", Text(delivery.backoff.initial)},
                                {"max", Text(delivery.backoff.max)},
                                {"multiplier", Number(delivery.backoff.multiplier)}};
}

void AddStorage(const BusStorage& storage, json::object& out) {
  out["max_message_bytes"] = storage.max_message_bytes;
  out["max_bytes"] = storage.max_bytes;
  out["max_age"] = Text(storage.max_age);
}

// Left out when empty (the built-in defaults apply), as they would be in the file.
void AddEventDefaults(const BusEventDefaults& defaults, json::object& out) {
  if (!defaults.default_source.empty()) out["default_source"] = defaults.default_source;
  if (!defaults.default_type.empty()) out["default_type"] = defaults.default_type;
}

json::object SubscriptionJson(const BusSubscription& subscription) {
  json::object out;
  AddDelivery(subscription.delivery, out);
  // Empty filter fields match everything: they are left out, as they would be in the file.
  json::object filter;
  if (!subscription.filter.type.empty()) filter["type"] = subscription.filter.type;
  if (!subscription.filter.source.empty()) filter["source"] = subscription.filter.source;
  if (!subscription.filter.subject.empty()) filter["subject"] = subscription.filter.subject;
  out["filter"] = std::move(filter);
  out["from_beginning"] = subscription.from_beginning;
  if (subscription.push) out["push"] = PushJson(*subscription.push);
  return out;
}

json::value ListenerTlsJson(const ListenerTls& tls);

// The credentials file's path is shown (a path, not a secret), as key files are.
json::object NatsJson(const BusNats& nats) {
  json::array servers;
  for (const auto& server : nats.servers) servers.emplace_back(server);
  json::object out{{"servers", std::move(servers)},
                   {"replicas", nats.replicas},
                   {"connect_timeout", Text(nats.connect_timeout)}};
  if (!nats.credentials.empty()) out["credentials"] = nats.credentials;
  return out;
}

json::object BusJson(const Bus& bus) {
  json::object queues;
  for (const auto& [name, queue] : bus.queues) {
    json::object q;
    AddDelivery(queue.delivery, q);
    AddStorage(queue.storage, q);
    if (queue.push) q["push"] = PushJson(*queue.push);
    AddEventDefaults(queue.event_defaults, q);
    queues[name] = std::move(q);
  }
  json::object topics;
  for (const auto& [name, topic] : bus.topics) {
    json::object t;
    AddStorage(topic.storage, t);
    json::object subscriptions;
    for (const auto& [sub_name, sub] : topic.subscriptions) {
      subscriptions[sub_name] = SubscriptionJson(sub);
    }
    t["subscriptions"] = std::move(subscriptions);
    AddEventDefaults(topic.event_defaults, t);
    topics[name] = std::move(t);
  }
  const bool nats = bus.backend == BusBackend::kNats;
  json::object out{{"backend", nats ? "nats" : "embedded"}, {"listen", bus.listen.ToString()}};
  // Each backend's keys only where they apply: the others are errors with it.
  if (nats) {
    if (bus.nats) out["nats"] = NatsJson(*bus.nats);
    out["dedupe_window"] = Text(bus.dedupe_window);
  } else {
    out["data_dir"] = bus.data_dir;
    out["durability"] = bus.durability == BusDurability::kInterval ? "interval" : "batch";
    // sync_interval is an error with durability: batch, so it is only shown where it applies.
    if (bus.durability == BusDurability::kInterval) out["sync_interval"] = Text(bus.sync_interval);
    out["dedupe_window"] = Text(bus.dedupe_window);
    out["segment_bytes"] = bus.segment_bytes;
    out["state_checkpoint_bytes"] = bus.state_checkpoint_bytes;
  }
  if (bus.tls) out["tls"] = ListenerTlsJson(*bus.tls);
  out["queues"] = std::move(queues);
  out["topics"] = std::move(topics);
  json::object api;
  if (bus.api.api_keys) api["api_keys"] = ApiKeysJson(*bus.api.api_keys);
  if (bus.api.auth) api["auth"] = json::object{{"jwt", bus.api.auth->jwt}};
  if (!api.empty()) out["api"] = std::move(api);
  return out;
}

// A listener's tls: "mesh" or its map. Key files are paths, not secrets: shown as written.
json::value ListenerTlsJson(const ListenerTls& tls) {
  if (tls.mesh) return "mesh";
  json::array certificates;
  for (const TlsCertificate& c : tls.certificates) {
    certificates.emplace_back(json::object{{"cert", c.cert}, {"key", c.key}});
  }
  json::object out{{"certificates", std::move(certificates)},
                   {"min_version", tls.min_version == TlsVersion::k1_3 ? "1.3" : "1.2"},
                   {"session_resumption", tls.session_resumption}};
  if (!tls.ciphers.empty()) out["ciphers"] = tls.ciphers;
  if (!tls.client_ca.empty()) out["client_ca"] = tls.client_ca;
  return out;
}

json::object MeshJson(const Mesh& mesh) {
  json::object out{{"cert", mesh.cert}, {"key", mesh.key}, {"ca", mesh.ca}};
  if (mesh.renew) {
    json::object renew{{"url", mesh.renew->url}, {"service", mesh.renew->service}};
    if (!mesh.renew->token_file.empty()) renew["token_file"] = mesh.renew->token_file;
    out["renew"] = std::move(renew);
  }
  return out;
}

}  // namespace

std::string ToJson(const Config& config) {
  json::array listeners;
  for (const Listener& l : config.listeners) {
    json::array routes;
    for (const Route& r : l.routes) routes.emplace_back(RouteJson(r));
    json::array trusted;
    for (const IpNetwork& n : l.trust_deadline_from) trusted.emplace_back(n.text);
    json::object listener{{"name", l.name},
                          {"listen", l.listen.ToString()},
                          {"limits", LimitsJson(l.limits)},
                          {"trust_deadline_from", std::move(trusted)},
                          {"http2", l.http2},
                          {"routes", std::move(routes)}};
    if (l.tls) listener["tls"] = ListenerTlsJson(*l.tls);
    listeners.emplace_back(std::move(listener));
  }
  json::object policies;
  for (const auto& [name, policy] : config.policies) policies[name] = PolicyJson(policy);
  json::object services;
  for (const auto& [name, service] : config.services) services[name] = ServiceJson(service);
  json::object admin{{"listen", config.admin.listen.ToString()}};
  if (config.admin.tls) admin["tls"] = ListenerTlsJson(*config.admin.tls);
  json::object root{{"workers", config.workers},
                    {"drain_time", Text(config.drain_time)},
                    {"admin", std::move(admin)},
                    {"access_log", json::object{{"enabled", config.access_log.enabled},
                                                {"path", config.access_log.path}}},
                    {"policies", std::move(policies)},
                    {"listeners", std::move(listeners)},
                    {"services", std::move(services)}};
  if (config.bus) root["bus"] = BusJson(*config.bus);
  if (!config.auth.jwt.empty()) {
    json::object jwt;
    for (const auto& [name, provider] : config.auth.jwt) jwt[name] = JwtProviderJson(provider);
    root["auth"] = json::object{{"jwt", std::move(jwt)}};
  }
  if (config.authorization) root["authorization"] = AuthorizationJson(*config.authorization);
  if (config.idempotency_store) {
    const IdempotencyStore& store = *config.idempotency_store;
    if (store.redis) {
      root["idempotency_store"] = json::object{{"redis", store.redis->ToString()}};
    } else {
      root["idempotency_store"] = json::object{{"data_dir", store.data_dir}};
    }
  }
  if (config.mesh) root["mesh"] = MeshJson(*config.mesh);
  return json::serialize(root);
}

}  // namespace ferry::config
