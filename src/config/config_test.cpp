#include "config/config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "config/load_for_test.hpp"

namespace ferry::config {
namespace {

using namespace std::chrono_literals;

constexpr const char* kService = R"(
services:
  api:
    endpoints:
      - 127.0.0.1:9000
)";

TEST(ConfigLoad, MinimalConfigGetsEveryDefault) {
  auto config = Load(std::string(R"(listeners:
  - name: web
    listen: 127.0.0.1:8080
    routes:
      - service: api
)") + kService);
  EXPECT_EQ(config->workers, 0);
  EXPECT_EQ(config->drain_time, 5s);
  EXPECT_EQ(config->admin.listen.ToString(), "127.0.0.1:9901");
  EXPECT_FALSE(config->access_log.enabled);
  EXPECT_EQ(config->access_log.path, "stdout");
  ASSERT_EQ(config->listeners.size(), 1u);
  const Listener& web = config->listeners[0];
  EXPECT_EQ(web.name, "web");
  EXPECT_EQ(web.listen.host, "127.0.0.1");
  EXPECT_EQ(web.listen.port, 8080);
  EXPECT_EQ(web.limits.max_header_bytes, 64u * 1024);
  EXPECT_EQ(web.limits.max_headers, 100u);
  EXPECT_EQ(web.limits.max_body_bytes, 1024ull * 1024 * 1024);
  EXPECT_EQ(web.limits.header_read_timeout, 10s);
  EXPECT_EQ(web.limits.idle_timeout, 60s);
  EXPECT_EQ(web.limits.request_timeout, 300s);
  ASSERT_EQ(web.routes.size(), 1u);
  EXPECT_EQ(web.routes[0].name, "web#0");
  EXPECT_FALSE(web.routes[0].match.prefix);
  EXPECT_FALSE(web.routes[0].match.path);
  EXPECT_TRUE(web.routes[0].match.methods.empty());
  EXPECT_EQ(web.routes[0].service, "api");
  EXPECT_FALSE(web.routes[0].rewrite_prefix);
  EXPECT_EQ(web.routes[0].timeout, 15s);
  const Service& api = config->services.at("api");
  EXPECT_EQ(api.name, "api");
  ASSERT_EQ(api.endpoints.size(), 1u);
  EXPECT_EQ(api.endpoints[0].ToString(), "127.0.0.1:9000");
  EXPECT_EQ(api.lb, LbPolicy::kRoundRobin);
  EXPECT_EQ(api.connect_timeout, 2s);
  EXPECT_EQ(api.max_connections_per_endpoint, 1024u);
  EXPECT_EQ(api.pool_idle_timeout, 60s);
  EXPECT_EQ(api.resolve_interval, 30s);
}

TEST(ConfigLoad, EmptyDocumentIsAnAdminOnlyNode) {
  auto config = Load("# nothing but a comment\n");
  EXPECT_TRUE(config->listeners.empty());
  EXPECT_TRUE(config->services.empty());
}

TEST(ConfigLoad, EveryKeyIsRead) {
  auto config = Load(R"(workers: 3
drain_time: 1m30s
admin: {listen: "[::1]:9000"}
access_log: {enabled: true, path: /tmp/access.log}
listeners:
  - name: edge
    listen: 0.0.0.0:0
    limits:
      max_header_bytes: 8KiB
      max_headers: 20
      max_body_bytes: 0
      header_read_timeout: 2s
      idle_timeout: 5s
      request_timeout: 0
    routes:
      - name: users
        match:
          prefix: /users/
          host: API.Example.COM
          methods: [GET, POST]
          headers: {X-Tenant: Acme}
        service: users
        rewrite_prefix: /v2/
        timeout: 250ms
services:
  users:
    endpoints: [users.internal:8080, "[fd00::1]:8080"]
    lb: hash
    hash_on: {header: X-User-Id}
    connect_timeout: 100ms
    max_connections_per_endpoint: 7
    pool_idle_timeout: 1h
    resolve_interval: 5s
)");
  EXPECT_EQ(config->workers, 3);
  EXPECT_EQ(config->drain_time, 90s);
  EXPECT_EQ(config->admin.listen.host, "::1");
  EXPECT_TRUE(config->access_log.enabled);
  EXPECT_EQ(config->access_log.path, "/tmp/access.log");
  const Listener& edge = config->listeners.at(0);
  EXPECT_EQ(edge.listen.port, 0);
  EXPECT_EQ(edge.limits.max_header_bytes, 8192u);
  EXPECT_EQ(edge.limits.max_headers, 20u);
  EXPECT_EQ(edge.limits.max_body_bytes, 0u);
  EXPECT_EQ(edge.limits.header_read_timeout, 2s);
  EXPECT_EQ(edge.limits.idle_timeout, 5s);
  EXPECT_EQ(edge.limits.request_timeout, 0s);
  const Route& users = edge.routes.at(0);
  EXPECT_EQ(users.name, "users");
  EXPECT_EQ(users.match.prefix, "/users/");
  EXPECT_EQ(users.match.host, "api.example.com");
  EXPECT_EQ(users.match.methods, (std::vector<std::string>{"GET", "POST"}));
  ASSERT_EQ(users.match.headers.size(), 1u);
  EXPECT_EQ(users.match.headers[0].first, "x-tenant");
  EXPECT_EQ(users.match.headers[0].second, "Acme");
  EXPECT_EQ(users.rewrite_prefix, "/v2/");
  EXPECT_EQ(users.timeout, 250ms);
  const Service& service = config->services.at("users");
  EXPECT_EQ(service.endpoints.at(0).host, "users.internal");
  EXPECT_EQ(service.endpoints.at(1).host, "fd00::1");
  EXPECT_EQ(service.lb, LbPolicy::kHash);
  EXPECT_EQ(service.hash_on.kind, HashOn::Kind::kHeader);
  EXPECT_EQ(service.hash_on.header, "x-user-id");
  EXPECT_EQ(service.connect_timeout, 100ms);
  EXPECT_EQ(service.max_connections_per_endpoint, 7u);
  EXPECT_EQ(service.pool_idle_timeout, 1h);
  EXPECT_EQ(service.resolve_interval, 5s);
}

TEST(ConfigLoad, HashOnClientAddress) {
  auto config = Load(
      "services:\n  s:\n    endpoints: [a.b:1]\n    lb: hash\n"
      "    hash_on: client_address\n");
  EXPECT_EQ(config->services.at("s").hash_on.kind, HashOn::Kind::kClientAddress);
}

TEST(ConfigErrors, UnknownKey) {
  EXPECT_EQ(Errors("listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n    colour: blue\n"),
            "t.yaml:4:5: listeners[0]: unknown key 'colour' (expected one of: name, listen, "
            "limits, trust_deadline_from, tls, http2, routes)");
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  EXPECT_EQ(Errors("tracing: {}\n"),
            "t.yaml:1:1: unknown top-level key 'tracing' (expected one of: workers, drain_time, "
            "admin, access_log, policies, services, listeners, bus, idempotency_store, mesh, auth, "
            "authorization)");
}

TEST(ConfigErrors, WrongType) {
  EXPECT_EQ(Errors("workers: \"4\"\n"), "t.yaml:1:10: workers: expected an integer, got a string");
}

TEST(ConfigErrors, YamlOneOneBooleanWordsAreNotBooleans) {
  EXPECT_EQ(Errors("access_log: {enabled: yes}\n"),
            "t.yaml:1:23: access_log.enabled: expected true or false, got 'yes'");
}

TEST(ConfigErrors, BooleanWordIsNotAString) {
  EXPECT_EQ(Errors("access_log: {path: on}\n"),
            "t.yaml:1:20: access_log.path: expected a string (quote it to use it as text), got a "
            "boolean");
}

TEST(ConfigErrors, NegativeWorkers) {
  EXPECT_EQ(Errors("workers: -1\n"),
            "t.yaml:1:10: workers: must be an integer between 0 and 1024, got -1");
}

TEST(ConfigErrors, BadDuration) {
  EXPECT_EQ(Errors("drain_time: 5x\n"),
            "t.yaml:1:13: drain_time: invalid duration '5x': expected a number with a unit, like "
            "250ms, 2s, 1m30s");
}

TEST(ConfigErrors, BadSize) {
  EXPECT_EQ(Errors("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n    limits:\n"
                   "      max_header_bytes: 4XB\n"),
            "t.yaml:5:25: listeners[0].limits.max_header_bytes: invalid size '4XB': unknown unit "
            "'XB' (use B, KB, MB, GB, KiB, MiB, GiB)");
}

TEST(ConfigErrors, AddressWithoutPort) {
  EXPECT_EQ(Errors("admin:\n  listen: 127.0.0.1\n"),
            "t.yaml:2:11: admin.listen: invalid address '127.0.0.1': expected host:port");
}

TEST(ConfigErrors, ListenerNeedsLiteralIp) {
  EXPECT_EQ(Errors("listeners:\n  - name: w\n    listen: localhost:80\n"),
            "t.yaml:3:13: listeners[0].listen: invalid address 'localhost:80': a listen address "
            "must be a literal IP address, not 'localhost' (use 0.0.0.0 or 127.0.0.1)");
}

TEST(ConfigErrors, EndpointPortZero) {
  EXPECT_EQ(Errors("services:\n  s:\n    endpoints:\n      - s.internal:0\n"),
            "t.yaml:4:9: services.s.endpoints[0]: invalid address 's.internal:0': port must be a "
            "number from 1 to 65535");
}

TEST(ConfigErrors, ListenerPortTooLarge) {
  EXPECT_EQ(Errors("admin: {listen: \"[::1]:65536\"}\n"),
            "t.yaml:1:17: admin.listen: invalid address '[::1]:65536': port must be a number from "
            "0 to 65535");
}

TEST(ConfigErrors, UnknownService) {
  EXPECT_EQ(Errors(std::string("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n    routes:\n"
                               "      - service: nope\n") +
                   kService),
            "t.yaml:5:18: listeners[0].routes[0].service: unknown service 'nope' (defined "
            "services: api)");
}

TEST(ConfigErrors, DuplicateListenerName) {
  EXPECT_EQ(Errors("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n"
                   "  - name: w\n    listen: 127.0.0.1:2\n"),
            "t.yaml:4:11: listeners[1].name: duplicate listener name 'w' (first used at 2:11)");
}

TEST(ConfigErrors, DuplicateListenAddress) {
  EXPECT_EQ(Errors("listeners:\n  - name: a\n    listen: 127.0.0.1:1\n"
                   "  - name: b\n    listen: 127.0.0.1:1\n"),
            "t.yaml:5:13: listeners[1].listen: duplicate listen address 127.0.0.1:1: listener "
            "'a' (at 3:13) uses it");
}

TEST(ConfigErrors, DuplicateListenAddressInAnotherIpv6Spelling) {
  EXPECT_NE(Errors("listeners:\n  - name: a\n    listen: \"[::1]:1\"\n"
                   "  - name: b\n    listen: \"[0:0::1]:1\"\n")
                .find("duplicate listen address"),
            std::string::npos);
}

TEST(ConfigErrors, PortZeroListenersDoNotClash) {
  Load("listeners:\n  - name: a\n    listen: 127.0.0.1:0\n  - name: b\n    listen: 127.0.0.1:0\n");
}

TEST(ConfigErrors, DuplicateRouteName) {
  EXPECT_EQ(Errors(std::string("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n    routes:\n"
                               "      - {name: r, service: api}\n"
                               "      - {name: r, service: api}\n") +
                   kService),
            "t.yaml:6:16: listeners[0].routes[1].name: duplicate route name 'r' (first used at "
            "5:16)");
}

TEST(ConfigErrors, DuplicateKey) {
  EXPECT_EQ(Errors("workers: 1\ndrain_time: 1s\nworkers: 2\n"),
            "t.yaml:3:1: duplicate key 'workers' (first defined at 1:1)");
}

TEST(ConfigErrors, DuplicateKeyInNestedMap) {
  EXPECT_EQ(Errors("services:\n  s:\n    endpoints: [a:1]\n    lb: random\n    lb: hash\n"),
            "t.yaml:5:5: services.s: duplicate key 'lb' (first defined at 4:5)");
}

TEST(ConfigErrors, EmptyEndpointList) {
  EXPECT_EQ(Errors("services:\n  s:\n    endpoints: []\n"),
            "t.yaml:3:16: services.s.endpoints: a service needs at least one endpoint");
}

TEST(ConfigErrors, UnknownLb) {
  EXPECT_EQ(Errors("services:\n  s:\n    endpoints: [a:1]\n    lb: fastest\n"),
            "t.yaml:4:9: services.s.lb: unknown lb 'fastest' (expected one of: round_robin, "
            "least_request, random, hash)");
}

TEST(ConfigErrors, HashWithoutHashOn) {
  EXPECT_EQ(Errors("services:\n  s:\n    endpoints: [a:1]\n    lb: hash\n"),
            "t.yaml:4:9: services.s.lb: lb: hash needs hash_on: client_address or hash_on: "
            "{header: NAME}");
}

TEST(ConfigErrors, HashWithInvalidHashOn) {
  EXPECT_EQ(Errors("services:\n  s:\n    endpoints: [a:1]\n    lb: hash\n    hash_on: {cookie: "
                   "x}\n"),
            "t.yaml:5:14: services.s.hash_on: missing required key 'header'\n"
            "t.yaml:5:15: services.s.hash_on: unknown key 'cookie' (expected one of: header)");
}

TEST(ConfigErrors, PrefixAndPath) {
  EXPECT_EQ(Errors(std::string("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n    routes:\n"
                               "      - match: {prefix: /a, path: /b}\n        service: api\n") +
                   kService),
            "t.yaml:5:35: listeners[0].routes[0].match.path: a route matches on either prefix or "
            "path, not both");
}

TEST(ConfigErrors, PrefixWithoutSlash) {
  EXPECT_EQ(Errors(std::string("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n    routes:\n"
                               "      - match: {prefix: api}\n        service: api\n") +
                   kService),
            "t.yaml:5:25: listeners[0].routes[0].match.prefix: must start with '/', got 'api'");
}

TEST(ConfigErrors, LowercaseMethod) {
  EXPECT_EQ(Errors(std::string("listeners:\n  - name: w\n    listen: 127.0.0.1:1\n    routes:\n"
                               "      - match: {methods: [GET, post]}\n        service: api\n") +
                   kService),
            "t.yaml:5:32: listeners[0].routes[0].match.methods[1]: method 'post' must be written "
            "in uppercase: POST");
}

TEST(ConfigErrors, SyntaxErrorHasPosition) {
  EXPECT_EQ(Errors("workers: 1\nlisteners: [\n  {name: a}\nservices: {}\n"),
            "t.yaml:4:1: invalid YAML: end of sequence flow not found");
}

TEST(ConfigErrors, AllErrorsAreReportedInFileOrder) {
  const std::string message = Errors(
      "workers: -1\n"
      "drain_time: soon\n"
      "listeners:\n"
      "  - name: w\n"
      "    listen: 127.0.0.1:1\n"
      "    routes:\n"
      "      - service: missing\n"
      "services:\n"
      "  s:\n"
      "    endpoints: []\n"
      "    lb: fastest\n");
  std::vector<std::string> lines;
  std::istringstream in(message);
  for (std::string line; std::getline(in, line);) lines.push_back(line.substr(0, line.find(": ")));
  EXPECT_EQ(lines, (std::vector<std::string>{"t.yaml:1:10", "t.yaml:2:13", "t.yaml:7:18",
                                             "t.yaml:10:16", "t.yaml:11:9"}))
      << message;
}

TEST(ConfigToJson, RoundTripsThroughTheLoader) {
  auto config = Load(R"(workers: 2
drain_time: 1500ms
access_log: {enabled: true}
listeners:
  - name: w
    listen: "[::1]:8080"
    limits: {max_body_bytes: 1MiB}
    routes:
      - match: {path: /x, host: A.example, methods: [PUT], headers: {X-K: v}}
        service: s
        rewrite_prefix: /y
services:
  s:
    endpoints: [s.internal:80]
    lb: hash
    hash_on: {header: X-Id}
bus:
  listen: 127.0.0.1:0
  data_dir: /tmp/bus
  durability: interval
  sync_interval: 250ms
  queues:
    jobs:
      backoff: {multiplier: 1.5}
      max_bytes: 10MiB
      push: {service: s, concurrency: 2}
  topics:
    jobs:
      max_age: 1h
      subscriptions:
        audit: {filter: {type: job.*}, from_beginning: true}
        mail: {push: {service: s, path: /mail}}
)");
  const std::string json = ToJson(*config);
  EXPECT_NE(json.find(R"("drain_time":"1500ms")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("max_body_bytes":1048576)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("listen":"[::1]:8080")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("name":"w#0")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("hash_on":{"header":"x-id"})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("sync_interval":"250ms")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("multiplier":1.5E0)"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("multiplier":2})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("filter":{"type":"job.*"})"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("push":{"service":"s","path":"/","timeout":"10s","concurrency":2})"),
            std::string::npos)
      << json;
  // JSON is YAML: the effective config loads back to the same effective config.
  auto again = LoadString(json, "effective.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(ToJson(**again), json);
}

TEST(ConfigToJson, BatchDurabilityHasNoSyncInterval) {
  // sync_interval is an error next to durability: batch, so the output must not carry it.
  auto config = Load("bus: {data_dir: /d}\n");
  const std::string json = ToJson(*config);
  EXPECT_NE(
      json.find(
          R"("bus":{"backend":"embedded","listen":"127.0.0.1:8081","data_dir":"/d",)"
          R"("durability":"batch",)"
          R"("dedupe_window":"10m","segment_bytes":67108864,"state_checkpoint_bytes":1048576,)"
          R"("queues":{},"topics":{}})"),
      std::string::npos)
      << json;
  auto again = LoadString(json, "effective.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(ToJson(**again), json);
}

TEST(ConfigToJson, NatsBackendShowsItsKeysAndNotTheEmbeddedOnes) {
  auto config = Load(
      "bus:\n  backend: nats\n  nats:\n    servers: [nats://10.0.0.1:4222]\n"
      "    replicas: 3\n    credentials: /etc/ferry/bus.creds\n");
  const std::string json = ToJson(*config);
  EXPECT_NE(json.find(R"("bus":{"backend":"nats","listen":"127.0.0.1:8081",)"
                      R"("nats":{"servers":["nats://10.0.0.1:4222"],"replicas":3,)"
                      R"("connect_timeout":"2s","credentials":"/etc/ferry/bus.creds"},)"
                      R"("dedupe_window":"10m","queues":{},"topics":{}})"),
            std::string::npos)
      << json;
  auto again = LoadString(json, "effective.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(ToJson(**again), json);
}

TEST(ConfigToJson, DefaultsAreExplicit) {
  const std::string json = ToJson(Config{});
  EXPECT_EQ(json, R"({"workers":0,"drain_time":"5s","admin":{"listen":"127.0.0.1:9901"},)"
                  R"("access_log":{"enabled":false,"path":"stdout"},"policies":{},"listeners":[],)"
                  R"("services":{}})");
}

// --- The files under examples/configs and tests/config/invalid --------------------------------

std::vector<std::filesystem::path> YamlFiles(const std::string& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry :
       std::filesystem::directory_iterator(std::string(FERRY_SOURCE_DIR) + dir)) {
    if (entry.path().extension() == ".yaml") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(ConfigFiles, EveryExampleLoads) {
  const auto files = YamlFiles("/examples/configs");
  ASSERT_GE(files.size(), 2u);
  for (const auto& file : files) {
    auto loaded = LoadFile(file.string());
    EXPECT_TRUE(loaded) << (loaded ? "" : loaded.error().message());
    if (loaded) {
      EXPECT_EQ((*loaded)->source_path, file.string());
    }
  }
}

TEST(ConfigFiles, EveryExampleRoundTripsThroughToJson) {
  for (const auto& file : YamlFiles("/examples/configs")) {
    auto loaded = LoadFile(file.string());
    ASSERT_TRUE(loaded) << loaded.error().message();
    // GET /config shows API keys by name only: without their hashes they cannot load again, so
    // the round trip is of everything else (ConfigAccess tests what ToJson shows of them).
    Config config = **loaded;
    for (Listener& listener : config.listeners) {
      for (Route& route : listener.routes) route.api_keys.reset();
    }
    if (config.bus) config.bus->api.api_keys.reset();
    const std::string json = ToJson(config);
    auto again = LoadString(json, file.filename().string() + ".json");
    ASSERT_TRUE(again) << again.error().message();
    EXPECT_EQ(ToJson(**again), json) << file;
  }
}

TEST(ConfigFiles, EveryInvalidConfigFailsWithItsExpectedMessage) {
  const auto files = YamlFiles("/tests/config/invalid");
  ASSERT_GE(files.size(), 20u);
  const std::regex located(R"(^.+:[0-9]+:[0-9]+: .+$)");
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string first;
    std::getline(in, first);
    const std::string kTag = "# expect: ";
    ASSERT_EQ(first.rfind(kTag, 0), 0u) << file << " lacks a first-line '# expect:' comment";
    const std::string expected = first.substr(kTag.size());
    auto loaded = LoadFile(file.string());
    ASSERT_FALSE(loaded) << file << " loaded without error";
    const std::string& message = loaded.error().message();
    EXPECT_NE(message.find(expected), std::string::npos) << file << "\n" << message;
    std::istringstream lines(message);
    for (std::string line; std::getline(lines, line);) {
      EXPECT_TRUE(std::regex_match(line, located)) << file << ": " << line;
      EXPECT_EQ(line.rfind(file.string() + ":", 0), 0u) << line;
    }
  }
}

TEST(ConfigFiles, MissingFileIsNotFound) {
  auto loaded = LoadFile("/nonexistent/ferry.yaml");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace ferry::config
