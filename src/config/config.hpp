// The typed, validated, immutable node config. YAML is parsed once (config/loader.cpp) into
// these structs with every default filled in; the rest of Ferry never sees YAML.
// Thread safety: a Config is immutable after loading and shared by const pointer.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.hpp"
#include "core/units.hpp"

namespace ferry::config {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A host and port. host is a literal IPv4/IPv6 address or a DNS name (endpoints only;
// listeners must be literal addresses).
struct Address {
  std::string host;              // "127.0.0.1", "::1" or "catalog.internal"
  std::uint16_t port = 0;        // 0 only for listeners: the kernel picks one
  std::string ToString() const;  // "127.0.0.1:8080", "[::1]:8080"
  bool operator==(const Address&) const = default;
};

// Per-listener protection against slow or abusive clients. Each limit answers with a clear
// status when hit: 431 headers too large / too many, 413 body too large, 408 timeouts.
struct Limits {
  std::uint64_t max_header_bytes = 64 * 1024;            // request line + headers
  std::uint32_t max_headers = 100;                       // header fields per request
  std::uint64_t max_body_bytes = 1024ull * 1024 * 1024;  // per request body; 0 = no limit
  Duration header_read_timeout = seconds(10);            // first byte to end of headers
  Duration idle_timeout = seconds(60);                   // keep-alive wait between requests
  Duration request_timeout = seconds(300);               // whole exchange incl. bodies; 0 = none
  // HTTP/2: streams open at once per connection, and the rapid-reset bound (client resets
  // allowed: a bucket of `burst` refilled at `rate` per second; nghttp2's own defaults).
  std::uint32_t max_concurrent_streams = 100;
  std::uint32_t stream_reset_burst = 1000;
  std::uint32_t stream_reset_rate = 33;
};

// Every condition given must hold. prefix and path are exclusive; with neither, any path.
struct RouteMatch {
  std::optional<std::string> prefix;  // path starts with this; begins with '/'
  std::optional<std::string> path;    // path equals this (exact); begins with '/'
  std::optional<std::string> host;    // Host header equals this (case-insensitive, port ignored)
  std::vector<std::string> methods;   // any of these (uppercase); empty = any method
  // each header equals the value; names lowercase, values compared exactly
  std::vector<std::pair<std::string, std::string>> headers;
};

// --- Resilience: named policies (`policies:`), attached to services and routes. A policy
// written in the file is the `default` policy with the fields it writes replaced (field by
// field, blocks key by key), so the loader hands every route a whole policy.

// A condition `retry.on` names beside status codes.
enum class RetryCondition {
  kConnectFailure,  // no connection could be made (nothing was sent)
  kReset,           // the connection closed or reset before a whole response head
  kTryTimeout,      // try_timeout fired before the response head
};

struct RetryBackoff {  // exponential with full jitter: a wait is uniform in [0, min(max, i*m^n)]
  Duration initial = std::chrono::milliseconds(25);
  Duration max = seconds(1);  // >= initial
  double multiplier = 2.0;    // >= 1, finite
  bool operator==(const RetryBackoff&) const = default;
};

struct RetryBudget {   // retries (and hedges) allowed: ratio of recent requests + a floor
  double ratio = 0.2;  // 0..1 ("20%")
  std::uint32_t min_per_second = 10;  // the floor
  bool operator==(const RetryBudget&) const = default;
};

struct RetryPolicy {
  std::uint32_t attempts = 2;  // tries in total, the first included; 1 = no retry; 1..10
  RetryBackoff backoff;
  std::vector<RetryCondition> on{RetryCondition::kConnectFailure, RetryCondition::kReset};
  std::vector<int> on_status{502, 503};  // upstream statuses that are retried (the ints of `on`)
  // gRPC statuses retried (the gRPC status names of `on`), for a route's grpc.idempotent
  // methods only; by default UNAVAILABLE (14).
  std::vector<int> on_grpc{14};
  RetryBudget budget;
  // Request bodies up to this size are kept so a try can be replayed; a larger body streams
  // through and its request is not retried (once a byte of it was sent).
  std::uint64_t replay_body_bytes = 64 * 1024;
  bool operator==(const RetryPolicy&) const = default;
};

struct CircuitBreakerPolicy {            // per service, per node
  double failure_ratio = 0.5;            // opens when failures/requests in the window reach it
  std::uint32_t min_requests = 20;       // ...and the window saw at least this many
  Duration window = seconds(10);         // sliding
  Duration open_for = seconds(5);        // then half-open: trial requests go through
  std::uint32_t half_open_requests = 1;  // trial requests at once while half-open
  bool operator==(const CircuitBreakerPolicy&) const = default;
};

struct OutlierDetectionPolicy {            // per endpoint, per node
  std::uint32_t consecutive_failures = 5;  // failures in a row that eject an endpoint
  Duration base_ejection = seconds(30);    // ejection time = base * times ejected before + 1
  Duration max_ejection = std::chrono::minutes(5);
  double max_ejected = 0.5;  // share of a service's endpoints ejected at most
  bool operator==(const OutlierDetectionPolicy&) const = default;
};

struct ConcurrencyPolicy {    // a bulkhead per service, per node
  std::uint32_t max = 1000;   // requests in flight to the service
  std::uint32_t queue = 100;  // waiting for a slot (bounded by the request's deadline); beyond:
                              // 503 upstream_overloaded
  bool operator==(const ConcurrencyPolicy&) const = default;
};

struct HedgePolicy {                               // idempotent requests only
  Duration after = std::chrono::milliseconds(50);  // a second try if no response head by then
  std::uint32_t max_extra = 1;                     // extra tries at most; 1..3
  bool operator==(const HedgePolicy&) const = default;
};

struct Policy {
  std::string name;                // its key under `policies:` ("default": the built-in one)
  Duration timeout = seconds(15);  // the whole request, all tries and backoffs; for routes
                                   // that do not write their own `timeout`
  Duration try_timeout = Duration::zero();  // per try, to the response head; 0 = none
  RetryPolicy retry;
  std::optional<CircuitBreakerPolicy> circuit_breaker;  // default policy: none
  std::optional<OutlierDetectionPolicy> outlier_detection = OutlierDetectionPolicy{};
  std::optional<ConcurrencyPolicy> concurrency;  // default policy: none
  std::optional<HedgePolicy> hedge;              // default policy: none
  bool operator==(const Policy&) const = default;
};

// A token bucket per route, per node (`rate_limit:` of a route): 429 with Retry-After past it.
struct RateLimit {
  double rps = 0;           // tokens added per second; > 0
  std::uint32_t burst = 0;  // bucket size; default max(1, ceil(rps))
  bool per_key = false;     // false: one bucket for the route; true: one per `by` value
  // What a bucket is per (the values of a service's `hash_on`); used when per_key.
  struct By {
    enum class Kind { kClientAddress, kHeader };
    Kind kind = Kind::kClientAddress;
    std::string header;  // lowercase header name when kind == kHeader
    bool operator==(const By&) const = default;
  } by;
  bool operator==(const RateLimit&) const = default;
};

// Fault injection for tests and drills (`fault:` of a route).
struct FaultAbort {
  int status = 503;      // 200-599
  double percent = 100;  // 0-100 of requests
  bool operator==(const FaultAbort&) const = default;
};
struct FaultDelay {
  Duration duration{};   // > 0
  double percent = 100;  // 0-100 of requests
  bool operator==(const FaultDelay&) const = default;
};
struct Fault {
  std::optional<FaultAbort> abort;
  std::optional<FaultDelay> delay;  // applied before the abort decision
  bool operator==(const Fault&) const = default;
};

// Idempotency keys on a route (`idempotency:`): needs Config::idempotency_store.
struct Idempotency {
  Duration ttl = std::chrono::hours(24);           // how long a first response is replayed
  std::uint64_t max_response_bytes = 1024 * 1024;  // larger responses are not stored
  std::string header = "idempotency-key";          // lowercase
  bool operator==(const Idempotency&) const = default;
};

// An IP network in CIDR notation ("10.0.0.0/8", "::1/128"; a bare address is a /32 or /128).
struct IpNetwork {
  std::string text;  // as written
  bool v6 = false;
  std::uint8_t bytes[16] = {};  // network address (first 4 for IPv4)
  std::uint8_t prefix = 0;
  // True when `ip` (a literal address, no port) is inside this network.
  bool Contains(std::string_view ip) const;
  bool operator==(const IpNetwork&) const = default;
};

// --- Security (docs/security.md): TLS, the mesh, JWT, API keys, CORS, authorization.

enum class TlsVersion { k1_2, k1_3 };  // written "1.2", "1.3" (quoted: a bare 1.3 is a number)

// A certificate (PEM; the file may carry the chain after the leaf) and its private key (PEM; the
// file must not be readable by group or others).
struct TlsCertificate {
  std::string cert;
  std::string key;
  bool operator==(const TlsCertificate&) const = default;
};

// A listener's `tls:`: the word `mesh` (the node's mesh certificate; every client must present
// a valid mesh certificate) or a map.
struct ListenerTls {
  bool mesh = false;
  // `cert`/`key` is the first entry; `certificates:` lists more. A client's SNI picks the entry
  // whose certificate names it (SAN DNS names, wildcards as TLS allows); else the first.
  std::vector<TlsCertificate> certificates;
  TlsVersion min_version = TlsVersion::k1_2;
  std::string ciphers;    // TLS 1.2 cipher list (OpenSSL syntax); "" = Ferry's modern default
  std::string client_ca;  // a CA bundle: clients must present a certificate it verifies; ""
                          // = no client certificates asked for (mesh: the mesh CA)
  bool session_resumption = true;  // session tickets (keys rotated in memory) and a session cache
  bool operator==(const ListenerTls&) const = default;
};

// A service's `tls:`: the word `mesh` (mutual TLS with the node's mesh certificate; the server
// must prove it is this service: spiffe://DOMAIN/service/NAME) or a map.
struct ServiceTls {
  bool mesh = false;
  std::string ca;                       // CA bundle (several roots); "" = the system's
  std::string server_name;              // SNI and the name verified; "" = the endpoint's host
  std::vector<std::string> pin_sha256;  // base64 SHA-256 of the server's SubjectPublicKeyInfo;
                                        // when set, the server's key must be one of these
  std::optional<TlsCertificate> client_certificate;  // mutual TLS outside the mesh
  TlsVersion min_version = TlsVersion::k1_2;
  bool operator==(const ServiceTls&) const = default;
};

// Renewal of the node's mesh certificate from `ferry ca serve`.
struct MeshRenewal {
  std::string url;         // the CA service, https://HOST:PORT
  std::string token_file;  // a one-time bootstrap token, for when the node has no valid
                           // certificate yet
  std::string service;     // the identity asked for: spiffe://DOMAIN/service/SERVICE
  bool operator==(const MeshRenewal&) const = default;
};

// The node's mesh identity (`mesh:`). Files are re-read when they change.
struct Mesh {
  std::string cert;  // the node's workload certificate (URI SAN spiffe://DOMAIN/service/NAME)
  std::string key;
  std::string ca;  // the mesh CA bundle
  std::optional<MeshRenewal> renew;
  bool operator==(const Mesh&) const = default;
};

// A JWT issuer (`auth: {jwt: {NAME: ...}}`).
struct JwtProvider {
  std::string name;                     // its key under auth.jwt
  std::string issuer;                   // `iss` must equal it
  std::vector<std::string> audiences;   // `aud` must hold one of these; empty = not checked
  std::string jwks;                     // a file path or an https:// URL
  std::string jwks_ca;                  // CA bundle for an https:// jwks; "" = the system's
  std::vector<std::string> algorithms;  // accepted `alg`s; empty = every asymmetric one
  std::string secret_file;              // HS256 only, and only with this set (the file's bytes)
  Duration clock_skew = seconds(60);
  Duration jwks_refresh = std::chrono::minutes(10);  // re-fetch interval of a URL's JWKS
  std::string cookie;                                // also take the token from this cookie
  // Claims forwarded to the upstream: claim name -> header name (lowercase).
  std::vector<std::pair<std::string, std::string>> forward_claims;
  bool operator==(const JwtProvider&) const = default;
};

struct Auth {
  std::map<std::string, JwtProvider> jwt;
  bool operator==(const Auth&) const = default;
};

// A route's `auth:`.
struct RouteAuth {
  std::string jwt;  // key into Config::auth.jwt
  bool operator==(const RouteAuth&) const = default;
};

struct ApiKey {
  std::string name;    // who holds it: logged and checked by authorization as the caller
  std::string sha256;  // hex SHA-256 of the key (the key itself is never written)
  bool operator==(const ApiKey&) const = default;
};

// A route's `api_keys:`.
struct ApiKeys {
  std::string header = "x-api-key";  // lowercase
  std::vector<ApiKey> keys;
  bool operator==(const ApiKeys&) const = default;
};

// A route's `cors:`.
struct Cors {
  std::vector<std::string> allow_origins;  // exact origins, or "*"
  std::vector<std::string> allow_methods;  // empty = the route's methods, else GET, HEAD, POST
  std::vector<std::string> allow_headers;  // lowercase
  std::vector<std::string> expose_headers;
  bool allow_credentials = false;  // not with "*"
  Duration max_age = std::chrono::minutes(10);
  bool operator==(const Cors&) const = default;
};

// One rule of `authorization:`. Each field that is set must match; the first rule that matches
// decides. A rule applies to the routes it names (all routes when it names none).
struct AuthzRule {
  bool allow = true;                 // written `allow:` or `deny:`
  std::vector<std::string> callers;  // SPIFFE IDs or API key names; a trailing '*' is a prefix
  std::vector<std::string> routes;   // route names
  std::vector<std::string> paths;    // exact, or a prefix with a trailing '*'
  std::vector<std::string> methods;  // uppercase
  std::vector<std::pair<std::string, std::string>> claims;  // JWT claim equals (or, for an
                                                            // array claim, holds) the value
  bool operator==(const AuthzRule&) const = default;
};

struct Authorization {
  bool default_allow = false;  // for a request no rule matches, on a route some rule applies to
  std::vector<AuthzRule> rules;
  bool operator==(const Authorization&) const = default;
};

// How a topic route streams its events (`push:`; docs/realtime.md).
struct RoutePush {
  Duration heartbeat = seconds(15);  // a comment line (SSE) or a ping (WebSocket) after this
                                     // long without an event; > 0
  Duration retry = seconds(3);       // the SSE `retry:` field: a browser's reconnect delay; > 0
  // A connection's events queued and not yet written, at most; past it the client is cut
  // (ferry_push_slow_disconnects_total) and resumes with Last-Event-ID. 1 KiB .. 1 GiB.
  std::uint64_t buffer_bytes = 1024 * 1024;
  bool operator==(const RoutePush&) const = default;
};

// A route's `grpc:` block (docs/grpc.md): its service must speak HTTP/2.
struct GrpcRoute {
  // Methods ("/package.Service/Method") that may be retried on the policy's retry.on statuses.
  std::vector<std::string> idempotent;
  // The largest gRPC message (its 5-byte prefix's length) accepted either way; 0 = no limit.
  std::uint64_t max_message_bytes = 0;
  bool operator==(const GrpcRoute&) const = default;
};

struct Route {
  std::string name;  // "<listener>#<index>" unless given; unique
  RouteMatch match;
  std::string service;  // key into Config::services; empty when `topic` is set
  // `topic:` in place of `service:`: the route streams this bus topic's events to clients (SSE,
  // or a WebSocket when upgraded) instead of proxying; a key into Bus::topics. Exactly one of
  // the two is set.
  std::string topic;
  RoutePush push;                             // a topic route's settings
  std::optional<std::string> rewrite_prefix;  // replaces the matched prefix
  Duration timeout = seconds(15);             // upstream: request sent to end of response, all
                                              // tries together; 0 = none. The route's own
                                              // `timeout`, else its policy's
  std::string policy = "default";  // key into Config::policies: the route's `policy`, else its
                                   // service's, else "default"
  // An upgraded connection (WebSocket) or a topic stream on this route is bounded by these
  // instead of `timeout` and the listener's request_timeout: no byte either way for
  // stream_idle_timeout ends a tunnel (a topic stream writes heartbeats, so is never idle),
  // and max_stream_duration ends either from its start. 0 = none.
  Duration stream_idle_timeout = seconds(300);
  Duration max_stream_duration{};
  // The upstream honours Idempotency-Key: a non-idempotent request carrying one may be retried.
  bool retry_with_idempotency_key = false;
  std::optional<RateLimit> rate_limit;
  std::optional<Fault> fault;
  std::optional<Idempotency> idempotency;
  std::optional<RouteAuth> auth;    // JWT authentication
  std::optional<ApiKeys> api_keys;  // API key authentication
  std::optional<Cors> cors;
  std::optional<GrpcRoute> grpc;  // gRPC settings (docs/grpc.md); needs an HTTP/2 service
};

struct Listener {
  std::string name;  // required, unique among listeners
  Address listen;    // required, a literal IP; unique among listeners and admin (port 0 aside)
  Limits limits;
  std::vector<Route> routes;  // first match wins
  // Clients whose x-ferry-deadline-ms is honoured (other Ferry nodes); from anyone else it is
  // stripped. Empty: nobody's.
  std::vector<IpNetwork> trust_deadline_from;
  std::optional<ListenerTls> tls;  // none: plain TCP
  // HTTP/2 beside HTTP/1.1: h2 by ALPN with tls, h2c by prior knowledge without.
  bool http2 = true;
};

enum class LbPolicy {
  kRoundRobin,    // in turn
  kLeastRequest,  // power of two choices on in-flight requests
  kRandom,        // uniform
  kHash,          // consistent hash of hash_on
};

struct HashOn {
  enum class Kind { kClientAddress, kHeader };
  Kind kind = Kind::kClientAddress;
  std::string header;  // lowercase header name when kind == kHeader
  bool operator==(const HashOn&) const = default;
};

// Active health checks of a service's endpoints (`health:`): a GET of `path` every interval; a
// 2xx is a pass. An endpoint is unhealthy after unhealthy_after failed checks in a row and
// healthy again after healthy_after passes; load balancing skips unhealthy endpoints.
struct HealthCheck {
  std::string path = "/healthz";  // starts with '/'
  Duration interval = seconds(10);
  Duration timeout = seconds(1);  // < interval
  std::uint32_t unhealthy_after = 3;
  std::uint32_t healthy_after = 2;
  // A grpc.health.v1 Check instead of the GET (`grpc:`; the service must speak HTTP/2): the
  // service name asked about ("" is the server as a whole); SERVING is a pass.
  std::optional<std::string> grpc_service;
  bool operator==(const HealthCheck&) const = default;
};

// The HTTP version spoken to a service's endpoints (`protocol:`).
enum class UpstreamProtocol {
  kHttp1,  // HTTP/1.1 (the default)
  kHttp2,  // HTTP/2: over the service's TLS (ALPN h2), or h2c with prior knowledge without it
  kAuto,   // ALPN offers h2 and http/1.1 on the service's TLS; the server picks per connection
};

// A service's `http2:` block (protocol http2 or auto).
struct ServiceHttp2 {
  // Streams one connection carries at once, at most (lower if the server's
  // SETTINGS_MAX_CONCURRENT_STREAMS is lower); more concurrent requests open more connections.
  std::uint32_t max_streams_per_connection = 100;
  // A PING on a connection that carried no frame for this long (0: none). 5 minutes stays
  // clear of gRPC servers' default too_many_pings policy (at most one ping per 5 minutes
  // without data), which answers with GOAWAY ENHANCE_YOUR_CALM.
  Duration keepalive_interval = std::chrono::minutes(5);
  bool operator==(const ServiceHttp2&) const = default;
};

struct Service {
  std::string name;                // its key under `services:`
  std::vector<Address> endpoints;  // at least one; DNS names are re-resolved
  LbPolicy lb = LbPolicy::kRoundRobin;
  HashOn hash_on;  // used when lb == kHash
  Duration connect_timeout = seconds(2);
  std::uint32_t max_connections_per_endpoint = 1024;  // per worker
  Duration pool_idle_timeout = seconds(60);           // idle upstream keep-alive lifetime
  Duration resolve_interval = seconds(30);            // re-resolution of DNS names
  std::string policy = "default";     // key into Config::policies; its routes' default
  std::optional<HealthCheck> health;  // active health checks; none: only outlier detection
  std::optional<ServiceTls> tls;      // none: plain TCP
  UpstreamProtocol protocol = UpstreamProtocol::kHttp1;
  ServiceHttp2 http2;  // used with protocol http2 and auto
  bool operator==(const Service&) const = default;
};

struct Admin {
  Address listen{"127.0.0.1", 9901};
  std::optional<ListenerTls> tls;  // none: plain TCP
  // HTTP/2 beside HTTP/1.1: h2 by ALPN with tls, h2c by prior knowledge without.
  bool http2 = true;
};

struct AccessLog {
  bool enabled = false;
  std::string path = "stdout";  // "stdout" or a file path (appended)
};

// --- The message bus (the `bus:` block). These are the broker's own option types too
// (bus/broker_options.hpp names them DeliveryOptions, SubscriptionOptions, ...): the loader fills
// what the engine runs with, and a subscription PUT (src/bus/api) is read by the same code
// (bus_loader.hpp: ReadSubscriptionPut).

struct BusBackoff {
  Duration initial = seconds(1);           // wait before the 2nd attempt after a failed delivery
  Duration max = std::chrono::minutes(5);  // longest wait; >= initial
  double multiplier = 2.0;                 // wait growth per failure; >= 1, finite
};

// Push delivery: the bus POSTs each message (CloudEvents binary mode) to a service of this
// config; a 2xx acks it, anything else or a timeout is a failed delivery (redelivery is the
// only retry: no HTTP-level retries or hedges).
struct BusPush {
  std::string service;             // key into Config::services
  std::string path = "/";          // request path on the service; starts with '/'
  Duration timeout = seconds(10);  // per delivery attempt; > 0
  std::uint32_t concurrency = 1;   // deliveries in flight at once (1..kMaxBusPushConcurrency)
};
// The most deliveries a push may have in flight (the config and the bus API's PUT check it).
inline constexpr std::uint32_t kMaxBusPushConcurrency = 1024;

struct BusDelivery {
  Duration lease = seconds(30);      // a delivery is redelivered unless settled within this; > 0
  std::uint32_t max_deliveries = 5;  // then the message moves to the dead letters; 0 = never
  BusBackoff backoff;
  // Not a key of the file: the engine's bound on messages read from the log into memory (ready,
  // in flight, waiting); a key blocked by a poison message can hold at most this many behind it.
  std::uint32_t window = 10000;
};

struct BusStorage {
  std::uint64_t max_message_bytes = 1024 * 1024;  // larger publishes get 413; 1..64MiB
  // on disk; 0 = no limit (then 507 on ENOSPC); when set, >= max_message_bytes
  std::uint64_t max_bytes = 0;
  Duration max_age = Duration::zero();  // 0 = keep until consumed
};

// The CloudEvents `source` and `type` an event published without them (a plain body) gets;
// empty: the built-in ones (source "/v1/queues/NAME" or "/v1/topics/NAME", type
// "ferry.message").
struct BusEventDefaults {
  std::string default_source;  // a URI-reference (RFC 3986), e.g. https://shop.example/orders
  std::string default_type;    // e.g. com.example.order.created
};

// What the broker runs a queue with (bus::QueueOptions).
struct BusQueueOptions {
  BusDelivery delivery;
  BusStorage storage;
};

struct BusQueue : BusQueueOptions {
  std::string name;             // its key under `queues:`; [A-Za-z0-9][A-Za-z0-9._-]{0,127}
  std::optional<BusPush> push;  // none: consumers pull
  BusEventDefaults event_defaults;
};

struct BusFilter {  // each set field must match; a trailing '*' makes it a prefix match
  std::string type;
  std::string source;
  std::string subject;
};

// What the broker runs (and stores with) a subscription (bus::SubscriptionOptions); a PUT sets
// these too.
struct BusSubscriptionOptions {
  BusDelivery delivery;
  BusFilter filter;
  std::optional<BusPush> push;  // none: consumers pull
  bool from_beginning = false;  // a new subscription starts at the first retained event
};

struct BusSubscription : BusSubscriptionOptions {
  std::string name;  // its key under the topic's `subscriptions:`; same rule as queue names
};

// What the broker runs a topic with (bus::TopicOptions).
struct BusTopicOptions {
  BusStorage storage;
};

struct BusTopic : BusTopicOptions {
  std::string name;  // its key under `topics:`; may equal a queue's name (separate namespaces)
  std::map<std::string, BusSubscription> subscriptions;
  BusEventDefaults event_defaults;
};

enum class BusDurability {
  kBatch,     // group commit: a publish is acknowledged once its batch is fsynced
  kInterval,  // fsync every sync_interval; acknowledged before (what NATS JetStream does)
};

// Which broker backs the bus (bus::CreateBroker).
enum class BusBackend {
  kEmbedded,  // the segmented log under data_dir (src/bus/engine, src/bus/log)
  kNats,      // streams and consumers on a NATS JetStream cluster (src/bus/nats)
};

// The NATS JetStream cluster of `backend: nats` (`bus.nats`).
struct BusNats {
  std::vector<std::string> servers;       // nats://host:port URLs, at least one; any may be tried
  std::uint32_t replicas = 1;             // JetStream replicas of every stream Ferry creates; 1..5
  Duration connect_timeout = seconds(2);  // per server at (re)connect; > 0
  std::string credentials;  // a NATS .creds file (user JWT and NKey seed); empty: none
  bool operator==(const BusNats&) const = default;
};

// Who may use the bus API (`bus.api`): its authentication; authorization is the top-level
// `authorization:` rules that name the bus's operations (bus.publish, ...) or no route.
struct BusApi {
  std::optional<ApiKeys> api_keys;  // every request needs one of these keys
  std::optional<RouteAuth> auth;    // every request needs a valid JWT of this provider
};

struct Bus {
  BusBackend backend = BusBackend::kEmbedded;
  Address listen{"127.0.0.1", 8081};  // the bus API; a literal IP, not a listener's or admin's
  std::optional<ListenerTls> tls;     // TLS on the bus API; none: plain TCP
  std::string data_dir;               // backend kEmbedded: required, not empty
  std::optional<BusNats> nats;        // backend kNats: required; otherwise none
  BusDurability durability = BusDurability::kBatch;
  Duration sync_interval = seconds(1);                // kInterval only; >= 1ms
  Duration dedupe_window = std::chrono::minutes(10);  // a repeated message id within it is a dup
  std::uint64_t segment_bytes = 64ull * 1024 * 1024;  // per log segment file; 64KiB..4GiB
  // A state log is checkpointed (compacted) after this many bytes; 4KiB..4GiB.
  std::uint64_t state_checkpoint_bytes = 1024 * 1024;
  std::map<std::string, BusQueue> queues;
  std::map<std::string, BusTopic> topics;
  BusApi api;
};

// Where idempotency records live (`idempotency_store:`): exactly one of the two.
struct IdempotencyStore {
  std::string data_dir;          // embedded (LMDB), created if missing; one per node
  std::optional<Address> redis;  // a Redis server shared by several nodes
  bool operator==(const IdempotencyStore&) const = default;
};

struct Config {
  std::string source_path;  // file the config came from ("" when loaded from a string)
  int workers = 0;          // 0 = one per core
  Duration drain_time = seconds(5);
  Admin admin;
  AccessLog access_log;
  std::vector<Listener> listeners;
  std::map<std::string, Service> services;
  std::optional<Bus> bus;  // no `bus:` block: no bus on this node
  // Always holds "default" (built in, or as the file overrides it) and every written policy,
  // each whole (the default's fields where the file wrote none).
  std::map<std::string, Policy> policies;
  std::optional<IdempotencyStore> idempotency_store;  // required when a route sets idempotency
  std::optional<Mesh> mesh;  // required when a listener or service says tls: mesh
  Auth auth;
  std::optional<Authorization> authorization;  // none: no authorization step
};

// Loads and validates. Every problem found is reported, one per line, as
// "file:line:col: message"; any problem makes the whole load fail.
Result<std::shared_ptr<const Config>> LoadFile(const std::string& path);
Result<std::shared_ptr<const Config>> LoadString(const std::string& yaml,
                                                 const std::string& file_name = "<string>");

// The effective config (defaults filled in) as JSON, for `GET /config`.
std::string ToJson(const Config& config);

}  // namespace ferry::config
