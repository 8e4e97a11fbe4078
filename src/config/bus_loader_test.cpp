// The `bus:` block: defaults, every key, and one test per kind of error with its exact message.
#include <gtest/gtest.h>

#include "config/load_for_test.hpp"

namespace ferry::config {
namespace {

using namespace std::chrono_literals;

// A bus block with one queue whose body (indented six spaces) is given; the queue starts at
// line 4, so its first key is on line 5.
std::string Queue(const std::string& body) {
  return "bus:\n  data_dir: /d\n  queues:\n    jobs:\n" + body;
}

// A bus block with topic "t" and subscription "s" whose body (indented ten spaces) is given;
// the subscription's first key is on line 7.
std::string Subscription(const std::string& body) {
  return "bus:\n  data_dir: /d\n  topics:\n    t:\n      subscriptions:\n        s:\n" + body;
}

constexpr const char* kService = "services:\n  api: {endpoints: [127.0.0.1:9000]}\n";

// --- Defaults ----------------------------------------------------------------------------------

TEST(BusConfig, NoBusBlockMeansNoBus) { EXPECT_FALSE(Load("workers: 1\n")->bus); }

TEST(BusConfig, BusBlockGetsEveryDefault) {
  const auto config = Load("bus:\n  data_dir: /var/lib/ferry/bus\n");
  ASSERT_TRUE(config->bus);
  const Bus& bus = *config->bus;
  EXPECT_EQ(bus.listen.ToString(), "127.0.0.1:8081");
  EXPECT_EQ(bus.data_dir, "/var/lib/ferry/bus");
  EXPECT_EQ(bus.backend, BusBackend::kEmbedded);
  EXPECT_EQ(bus.durability, BusDurability::kBatch);
  EXPECT_EQ(bus.sync_interval, 1s);
  EXPECT_EQ(bus.dedupe_window, 10min);
  EXPECT_EQ(bus.segment_bytes, 64u * 1024 * 1024);
  EXPECT_EQ(bus.state_checkpoint_bytes, 1024u * 1024);
  EXPECT_TRUE(bus.queues.empty());
  EXPECT_TRUE(bus.topics.empty());
}

TEST(BusConfig, QueueGetsEveryDefault) {
  const auto config = Load(Queue("      {}\n"));
  const BusQueue& queue = config->bus->queues.at("jobs");
  EXPECT_EQ(queue.name, "jobs");
  EXPECT_EQ(queue.delivery.lease, 30s);
  EXPECT_EQ(queue.delivery.max_deliveries, 5u);
  EXPECT_EQ(queue.delivery.backoff.initial, 1s);
  EXPECT_EQ(queue.delivery.backoff.max, 5min);
  EXPECT_EQ(queue.delivery.backoff.multiplier, 2.0);
  EXPECT_EQ(queue.storage.max_message_bytes, 1024u * 1024);
  EXPECT_EQ(queue.storage.max_bytes, 0u);
  EXPECT_EQ(queue.storage.max_age, 0s);
  EXPECT_FALSE(queue.push);
}

TEST(BusConfig, TopicAndSubscriptionGetEveryDefault) {
  const auto config = Load(Subscription("          {}\n"));
  const BusTopic& topic = config->bus->topics.at("t");
  EXPECT_EQ(topic.name, "t");
  EXPECT_EQ(topic.storage.max_message_bytes, 1024u * 1024);
  EXPECT_EQ(topic.storage.max_bytes, 0u);
  EXPECT_EQ(topic.storage.max_age, 0s);
  const BusSubscription& sub = topic.subscriptions.at("s");
  EXPECT_EQ(sub.name, "s");
  EXPECT_EQ(sub.delivery.lease, 30s);
  EXPECT_EQ(sub.delivery.max_deliveries, 5u);
  EXPECT_EQ(sub.delivery.backoff.multiplier, 2.0);
  EXPECT_EQ(sub.filter.type, "");
  EXPECT_EQ(sub.filter.source, "");
  EXPECT_EQ(sub.filter.subject, "");
  EXPECT_FALSE(sub.from_beginning);
  EXPECT_FALSE(sub.push);
}

TEST(BusConfig, PushGetsItsDefaults) {
  const auto config = Load(Queue("      push: {service: api}\n") + kService);
  const BusPush& push = config->bus->queues.at("jobs").push.value();
  EXPECT_EQ(push.service, "api");
  EXPECT_EQ(push.path, "/");
  EXPECT_EQ(push.timeout, 10s);
  EXPECT_EQ(push.concurrency, 1u);
}

TEST(BusConfig, EveryKeyIsRead) {
  const auto config = Load(std::string(R"(bus:
  listen: "[::1]:7000"
  data_dir: bus-data
  durability: interval
  sync_interval: 20ms
  dedupe_window: 0
  segment_bytes: 64KiB
  state_checkpoint_bytes: 8KiB
  queues:
    payments:
      lease: 45s
      max_deliveries: 0
      backoff: {initial: 200ms, max: 200ms, multiplier: 1}
      max_message_bytes: 64MiB
      max_bytes: 1TiB
      max_age: 72h
      push: {service: api, path: /pay, timeout: 3s, concurrency: 1024}
  topics:
    orders:
      max_message_bytes: 1
      max_bytes: 1
      max_age: 1m
      subscriptions:
        billing:
          lease: 1m
          max_deliveries: 9
          backoff: {initial: 2s, max: 1h, multiplier: 1.5}
          filter: {type: order.*, source: /shop, subject: "*"}
          from_beginning: true
          push: {service: api, path: /billing}
)") + kService);
  const Bus& bus = *config->bus;
  EXPECT_EQ(bus.listen.host, "::1");
  EXPECT_EQ(bus.listen.port, 7000);
  EXPECT_EQ(bus.data_dir, "bus-data");
  EXPECT_EQ(bus.durability, BusDurability::kInterval);
  EXPECT_EQ(bus.sync_interval, 20ms);
  EXPECT_EQ(bus.dedupe_window, 0s);
  EXPECT_EQ(bus.segment_bytes, 64u * 1024);
  EXPECT_EQ(bus.state_checkpoint_bytes, 8u * 1024);
  const BusQueue& q = bus.queues.at("payments");
  EXPECT_EQ(q.delivery.lease, 45s);
  EXPECT_EQ(q.delivery.max_deliveries, 0u);
  EXPECT_EQ(q.delivery.backoff.initial, 200ms);
  EXPECT_EQ(q.delivery.backoff.max, 200ms);
  EXPECT_EQ(q.delivery.backoff.multiplier, 1.0);
  EXPECT_EQ(q.storage.max_message_bytes, 64u * 1024 * 1024);
  EXPECT_EQ(q.storage.max_bytes, 1024ull * 1024 * 1024 * 1024);
  EXPECT_EQ(q.storage.max_age, 72h);
  ASSERT_TRUE(q.push);
  EXPECT_EQ(q.push->service, "api");
  EXPECT_EQ(q.push->path, "/pay");
  EXPECT_EQ(q.push->timeout, 3s);
  EXPECT_EQ(q.push->concurrency, 1024u);
  const BusTopic& t = bus.topics.at("orders");
  EXPECT_EQ(t.storage.max_message_bytes, 1u);
  EXPECT_EQ(t.storage.max_bytes, 1u);
  EXPECT_EQ(t.storage.max_age, 1min);
  const BusSubscription& s = t.subscriptions.at("billing");
  EXPECT_EQ(s.delivery.lease, 1min);
  EXPECT_EQ(s.delivery.max_deliveries, 9u);
  EXPECT_EQ(s.delivery.backoff.initial, 2s);
  EXPECT_EQ(s.delivery.backoff.max, 1h);
  EXPECT_EQ(s.delivery.backoff.multiplier, 1.5);
  EXPECT_EQ(s.filter.type, "order.*");
  EXPECT_EQ(s.filter.source, "/shop");
  EXPECT_EQ(s.filter.subject, "*");
  EXPECT_TRUE(s.from_beginning);
  ASSERT_TRUE(s.push);
  EXPECT_EQ(s.push->path, "/billing");
}

TEST(BusConfig, QueuesAndTopicsAreSeparateNamespaces) {
  const auto config =
      Load("bus:\n  data_dir: /d\n  queues: {orders: {}}\n  topics: {orders: {}}\n");
  EXPECT_EQ(config->bus->queues.count("orders"), 1u);
  EXPECT_EQ(config->bus->topics.count("orders"), 1u);
}

TEST(BusConfig, PortZeroDoesNotClash) {
  Load(
      "listeners:\n  - name: a\n    listen: 127.0.0.1:0\n"
      "bus: {listen: 127.0.0.1:0, data_dir: /d}\n");
}

// --- Errors in the block itself ----------------------------------------------------------------

TEST(BusConfigErrors, NotAMap) {
  EXPECT_EQ(Errors("bus: [a]\n"), "t.yaml:1:6: bus: expected a map, got a list");
}

TEST(BusConfigErrors, MissingDataDir) {
  EXPECT_EQ(Errors("bus:\n  listen: 127.0.0.1:0\n"),
            "t.yaml:2:3: bus: missing required key 'data_dir'");
}

TEST(BusConfigErrors, EmptyDataDir) {
  EXPECT_EQ(Errors("bus:\n  data_dir: \"\"\n"), "t.yaml:2:13: bus.data_dir: must not be empty");
}

TEST(BusConfigErrors, UnknownKey) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  fsync: always\n"),
            "t.yaml:3:3: bus: unknown key 'fsync' (expected one of: backend, listen, tls, "
            "nats, data_dir, durability, sync_interval, segment_bytes, "
            "state_checkpoint_bytes, dedupe_window, api, queues, topics)");
}

TEST(BusConfigErrors, UnknownBackend) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  backend: jetstream\n"),
            "t.yaml:3:12: bus.backend: unknown backend 'jetstream' (expected one of: embedded, "
            "nats)");
}

TEST(BusConfigErrors, ListenNeedsLiteralIp) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  listen: localhost:8081\n"),
            "t.yaml:3:11: bus.listen: invalid address 'localhost:8081': a listen address must be "
            "a literal IP address, not 'localhost' (use 0.0.0.0 or 127.0.0.1)");
}

TEST(BusConfigErrors, UnknownDurability) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  durability: always\n"),
            "t.yaml:3:15: bus.durability: unknown durability 'always' (expected one of: batch, "
            "interval)");
}

TEST(BusConfigErrors, SyncIntervalWithBatchDurability) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  sync_interval: 5ms\n"),
            "t.yaml:3:18: bus.sync_interval: sync_interval is only used with durability: "
            "interval");
}

TEST(BusConfigErrors, SyncIntervalBelowOneMillisecond) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  durability: interval\n  sync_interval: 500us\n"),
            "t.yaml:4:18: bus.sync_interval: must be at least 1ms, got 500us");
}

TEST(BusConfigErrors, SegmentBytesTooSmall) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  segment_bytes: 32KiB\n"),
            "t.yaml:3:18: bus.segment_bytes: must be at least 64KiB, got 32KiB");
}

TEST(BusConfigErrors, SegmentBytesTooLarge) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  segment_bytes: 5GiB\n"),
            "t.yaml:3:18: bus.segment_bytes: size 5GiB is larger than the maximum 4294967296 "
            "bytes");
}

TEST(BusConfigErrors, StateCheckpointBytesTooSmall) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  state_checkpoint_bytes: 1KiB\n"),
            "t.yaml:3:27: bus.state_checkpoint_bytes: must be at least 4KiB, got 1KiB");
}

TEST(BusConfigErrors, InvalidQueueName) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  queues:\n    ..: {}\n"),
            "t.yaml:4:5: bus.queues: invalid queue name '..': use 1 to 128 letters, digits, '_', "
            "'.' and '-', starting with a letter or digit");
}

TEST(BusConfigErrors, InvalidSubscriptionName) {
  EXPECT_EQ(
      Errors("bus:\n  data_dir: /d\n  topics:\n    t:\n      subscriptions:\n        a/b: {}\n"),
      "t.yaml:6:9: bus.topics.t.subscriptions: invalid subscription name 'a/b': use 1 to "
      "128 letters, digits, '_', '.' and '-', starting with a letter or digit");
}

TEST(BusConfigErrors, DuplicateQueue) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  queues:\n    a: {}\n    a: {}\n"),
            "t.yaml:5:5: bus.queues: duplicate key 'a' (first defined at 4:5)");
}

TEST(BusConfigErrors, QueueWithoutAMap) {
  EXPECT_EQ(Errors(Queue("")), "t.yaml:4:5: bus.queues.jobs: expected a map, got nothing (null)");
}

TEST(BusConfigErrors, UnknownQueueKey) {
  // Topics' keys belong to topics: a queue has no subscriptions.
  EXPECT_EQ(Errors(Queue("      subscriptions: {}\n")),
            "t.yaml:5:7: bus.queues.jobs: unknown key 'subscriptions' (expected one of: lease, "
            "max_deliveries, backoff, max_message_bytes, max_bytes, max_age, push, default_source, "
            "default_type)");
}

TEST(BusConfigErrors, UnknownTopicKey) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  topics:\n    t:\n      lease: 1s\n"),
            "t.yaml:5:7: bus.topics.t: unknown key 'lease' (expected one of: max_message_bytes, "
            "max_bytes, max_age, subscriptions, default_source, default_type)");
}

TEST(BusConfig, EventDefaultsOfQueuesAndTopics) {
  const auto config = Load(
      "bus:\n  data_dir: /d\n  queues:\n    jobs: {default_source: 'https://shop.example/j', "
      "default_type: com.example.job}\n    plain: {}\n  topics:\n    t: {default_source: /t}\n");
  EXPECT_EQ(config->bus->queues.at("jobs").event_defaults.default_source, "https://shop.example/j");
  EXPECT_EQ(config->bus->queues.at("jobs").event_defaults.default_type, "com.example.job");
  EXPECT_EQ(config->bus->queues.at("plain").event_defaults.default_source, "");  // built-in
  EXPECT_EQ(config->bus->topics.at("t").event_defaults.default_source, "/t");
  EXPECT_EQ(config->bus->topics.at("t").event_defaults.default_type, "");
  // The effective config shows what is set, and leaves out what takes the built-in default.
  const std::string json = ToJson(*config);
  EXPECT_NE(json.find(R"("default_source":"https://shop.example/j")"), std::string::npos) << json;
  EXPECT_NE(json.find(R"("default_type":"com.example.job")"), std::string::npos) << json;
  EXPECT_EQ(json.find(R"("default_type":"")"), std::string::npos) << json;
}

TEST(BusConfigErrors, DefaultSourceNotAUriReference) {
  EXPECT_EQ(Errors(Queue("      default_source: not a uri\n")),
            "t.yaml:5:23: bus.queues.jobs.default_source: 'not a uri' is not a URI-reference "
            "(RFC 3986), like /shop/orders or https://shop.example/orders");
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  topics:\n    t:\n      default_source: '1x:y'\n"),
            "t.yaml:5:23: bus.topics.t.default_source: '1x:y' is not a URI-reference (RFC 3986), "
            "like /shop/orders or https://shop.example/orders");
}

TEST(BusConfigErrors, EmptyDefaultType) {
  EXPECT_EQ(Errors(Queue("      default_type: ''\n")),
            "t.yaml:5:21: bus.queues.jobs.default_type: must be a non-empty string without "
            "control characters, like com.example.order.created");
}

TEST(BusConfigErrors, ZeroLease) {
  EXPECT_EQ(Errors(Queue("      lease: 0\n")),
            "t.yaml:5:14: bus.queues.jobs.lease: must be greater than 0");
}

TEST(BusConfigErrors, NegativeMaxDeliveries) {
  EXPECT_EQ(Errors(Queue("      max_deliveries: -1\n")),
            "t.yaml:5:23: bus.queues.jobs.max_deliveries: must be an integer between 0 and "
            "4294967295, got -1");
}

TEST(BusConfigErrors, ZeroBackoffInitial) {
  EXPECT_EQ(Errors(Queue("      backoff: {initial: 0}\n")),
            "t.yaml:5:26: bus.queues.jobs.backoff.initial: must be greater than 0");
}

TEST(BusConfigErrors, BackoffMaxBelowInitial) {
  EXPECT_EQ(Errors(Queue("      backoff: {initial: 2s, max: 1s}\n")),
            "t.yaml:5:35: bus.queues.jobs.backoff.max: max (1s) must be at least initial (2s)");
}

TEST(BusConfigErrors, BackoffInitialAboveDefaultMax) {
  EXPECT_EQ(Errors(Queue("      backoff: {initial: 10m}\n")),
            "t.yaml:5:26: bus.queues.jobs.backoff.initial: max (5m, the default) must be at least "
            "initial (10m)");
}

TEST(BusConfigErrors, BackoffMultiplierBelowOne) {
  EXPECT_EQ(Errors(Queue("      backoff: {multiplier: 0.5}\n")),
            "t.yaml:5:29: bus.queues.jobs.backoff.multiplier: must be a number of at least 1, got "
            "0.5");
}

TEST(BusConfigErrors, BackoffMultiplierIsNotANumber) {
  EXPECT_EQ(Errors(Queue("      backoff: {multiplier: \"2\"}\n")),
            "t.yaml:5:29: bus.queues.jobs.backoff.multiplier: expected a number, got a string");
}

TEST(BusConfigErrors, BackoffMultiplierInfinite) {
  EXPECT_EQ(Errors(Queue("      backoff: {multiplier: .inf}\n")),
            "t.yaml:5:29: bus.queues.jobs.backoff.multiplier: must be a number of at least 1, got "
            ".inf");
}

TEST(BusConfigErrors, ZeroMaxMessageBytes) {
  EXPECT_EQ(Errors(Queue("      max_message_bytes: 0\n")),
            "t.yaml:5:26: bus.queues.jobs.max_message_bytes: must be greater than 0");
}

TEST(BusConfigErrors, MaxMessageBytesTooLarge) {
  EXPECT_EQ(Errors(Queue("      max_message_bytes: 65MiB\n")),
            "t.yaml:5:26: bus.queues.jobs.max_message_bytes: size 65MiB is larger than the "
            "maximum 67108864 bytes");
}

TEST(BusConfigErrors, MaxBytesCannotHoldOneMessage) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  topics:\n    t: {max_bytes: 1KiB}\n"),
            "t.yaml:4:20: bus.topics.t.max_bytes: 1024 bytes cannot hold one message of "
            "max_message_bytes (1048576 bytes, the default); use 0 for no limit");
}

TEST(BusConfigErrors, BadMaxAge) {
  EXPECT_EQ(Errors(Queue("      max_age: 1d\n")),
            "t.yaml:5:16: bus.queues.jobs.max_age: invalid duration '1d': expected a number with "
            "a unit, like 250ms, 2s, 1m30s");
}

TEST(BusConfigErrors, PushWithoutService) {
  EXPECT_EQ(Errors(Queue("      push: {path: /x}\n")),
            "t.yaml:5:13: bus.queues.jobs.push: missing required key 'service'");
}

TEST(BusConfigErrors, PushPathWithoutSlash) {
  EXPECT_EQ(Errors(Queue("      push: {service: api, path: pay}\n") + kService),
            "t.yaml:5:34: bus.queues.jobs.push.path: must be a path starting with '/', got 'pay'");
}

TEST(BusConfigErrors, ZeroPushTimeout) {
  EXPECT_EQ(Errors(Queue("      push: {service: api, timeout: 0}\n") + kService),
            "t.yaml:5:37: bus.queues.jobs.push.timeout: must be greater than 0");
}

// A push still waiting for its answer when the lease ends would be delivered again meanwhile.
TEST(BusConfigErrors, PushTimeoutNotBelowTheLease) {
  EXPECT_EQ(Errors(Queue("      lease: 5s\n      push: {service: api, timeout: 5s}\n") + kService),
            "t.yaml:6:37: bus.queues.jobs.push.timeout: push timeout (5s) must be less than the "
            "lease (5s): a delivery whose push outlasts its lease is delivered again meanwhile");
  EXPECT_EQ(Errors(Queue("      push: {service: api, timeout: 30s}\n") + kService),
            "t.yaml:5:37: bus.queues.jobs.push.timeout: push timeout (30s) must be less than the "
            "lease (30s, the default): a delivery whose push outlasts its lease is delivered "
            "again meanwhile");
  // The key order does not matter, and the default timeout (10s) is named as such.
  EXPECT_EQ(
      Errors(Subscription("          push: {service: api}\n          lease: 2s\n") + kService),
      "t.yaml:7:17: bus.topics.t.subscriptions.s.push: push timeout (10s, the default) "
      "must be less than the lease (2s): a delivery whose push outlasts its lease is "
      "delivered again meanwhile");
  EXPECT_TRUE(Load(Queue("      lease: 5s\n      push: {service: api, timeout: 4s}\n") + kService));
  // An invalid lease is reported once, not compared.
  EXPECT_EQ(Errors(Queue("      lease: 0\n      push: {service: api}\n") + kService),
            "t.yaml:5:14: bus.queues.jobs.lease: must be greater than 0");
}

TEST(BusConfigErrors, PushConcurrencyOutOfRange) {
  EXPECT_EQ(Errors(Queue("      push: {service: api, concurrency: 0}\n") + kService),
            "t.yaml:5:41: bus.queues.jobs.push.concurrency: must be an integer between 1 and "
            "1024, got 0");
  EXPECT_EQ(Errors(Queue("      push: {service: api, concurrency: 1025}\n") + kService),
            "t.yaml:5:41: bus.queues.jobs.push.concurrency: must be an integer between 1 and "
            "1024, got 1025");
}

TEST(BusConfigErrors, FilterStarNotAtTheEnd) {
  EXPECT_EQ(Errors(Subscription("          filter: {type: order.*.created}\n")),
            "t.yaml:7:26: bus.topics.t.subscriptions.s.filter.type: '*' is only allowed as the "
            "last character (a prefix match), got 'order.*.created'");
}

TEST(BusConfigErrors, FilterUnknownKey) {
  EXPECT_EQ(Errors(Subscription("          filter: {datacontenttype: x}\n")),
            "t.yaml:7:20: bus.topics.t.subscriptions.s.filter: unknown key 'datacontenttype' "
            "(expected one of: type, source, subject)");
}

TEST(BusConfigErrors, FromBeginningIsABoolean) {
  EXPECT_EQ(Errors(Subscription("          from_beginning: yes\n")),
            "t.yaml:7:27: bus.topics.t.subscriptions.s.from_beginning: expected true or false, "
            "got 'yes'");
}

// --- Cross-checks against the rest of the file ------------------------------------------------

TEST(BusConfigErrors, UnknownPushService) {
  EXPECT_EQ(Errors(Subscription("          push: {service: billing}\n") + kService),
            "t.yaml:7:27: bus.topics.t.subscriptions.s.push.service: unknown service 'billing' "
            "(defined services: api)");
}

TEST(BusConfigErrors, ListenUsedByAListener) {
  EXPECT_EQ(Errors("listeners:\n  - name: web\n    listen: 127.0.0.1:8080\n"
                   "bus:\n  listen: 127.0.0.1:8080\n  data_dir: /d\n"),
            "t.yaml:5:11: bus.listen: listen address 127.0.0.1:8080 is already used by listener "
            "'web' (at 3:13)");
}

TEST(BusConfigErrors, ListenUsedByTheAdminListener) {
  EXPECT_EQ(
      Errors("bus:\n  listen: \"[::1]:9901\"\n  data_dir: /d\nadmin: {listen: \"[::1]:9901\"}\n"),
      "t.yaml:2:11: bus.listen: listen address [::1]:9901 is already used by the admin "
      "listener");
  EXPECT_EQ(Errors("bus:\n  listen: 127.0.0.1:9901\n  data_dir: /d\n"),
            "t.yaml:2:11: bus.listen: listen address 127.0.0.1:9901 is already used by the admin "
            "listener (its default)");
}

TEST(BusConfigErrors, DefaultListenUsedByAListener) {
  EXPECT_EQ(Errors("listeners:\n  - name: web\n    listen: 127.0.0.1:8081\nbus:\n  data_dir: /d\n"),
            "t.yaml:5:3: bus: the bus's default listen address 127.0.0.1:8081 is already used by "
            "listener 'web' (at 3:13); set bus.listen to another address");
}

TEST(BusConfigErrors, EveryErrorIsReported) {
  const std::string message =
      Errors(Queue("      lease: 0\n"
                   "      max_deliveries: many\n"
                   "      push: {service: nope}\n"));
  EXPECT_EQ(message,
            "t.yaml:5:14: bus.queues.jobs.lease: must be greater than 0\n"
            "t.yaml:6:23: bus.queues.jobs.max_deliveries: expected an integer, got a string\n"
            "t.yaml:7:23: bus.queues.jobs.push.service: unknown service 'nope' (defined services: "
            "none)");
}

// --- backend: nats ---------------------------------------------------------------------------

TEST(BusNatsConfig, NatsBlockGetsItsDefaults) {
  auto config = Load("bus:\n  backend: nats\n  nats:\n    servers: [nats://127.0.0.1:4222]\n");
  ASSERT_TRUE(config->bus);
  EXPECT_EQ(config->bus->backend, BusBackend::kNats);
  ASSERT_TRUE(config->bus->nats);
  EXPECT_EQ(config->bus->nats->servers, std::vector<std::string>{"nats://127.0.0.1:4222"});
  EXPECT_EQ(config->bus->nats->replicas, 1u);
  EXPECT_EQ(config->bus->nats->connect_timeout, seconds(2));
  EXPECT_EQ(config->bus->nats->credentials, "");
  EXPECT_EQ(config->bus->data_dir, "");
}

TEST(BusNatsConfig, EveryNatsKeyIsRead) {
  auto config = Load(
      "bus:\n  backend: nats\n  dedupe_window: 2m\n  nats:\n"
      "    servers: [nats://10.0.0.1:4222, nats://nats-2.internal:4223]\n"
      "    replicas: 3\n    connect_timeout: 500ms\n    credentials: /etc/ferry/bus.creds\n");
  ASSERT_TRUE(config->bus && config->bus->nats);
  const auto& nats = *config->bus->nats;
  EXPECT_EQ(nats.servers,
            (std::vector<std::string>{"nats://10.0.0.1:4222", "nats://nats-2.internal:4223"}));
  EXPECT_EQ(nats.replicas, 3u);
  EXPECT_EQ(nats.connect_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(nats.credentials, "/etc/ferry/bus.creds");
  EXPECT_EQ(config->bus->dedupe_window, std::chrono::minutes(2));
}

TEST(BusNatsConfigErrors, NatsNeedsItsBlock) {
  EXPECT_EQ(Errors("bus:\n  backend: nats\n"), "t.yaml:2:3: bus: missing required key 'nats'");
}

TEST(BusNatsConfigErrors, EmbeddedKeysAreErrorsWithNats) {
  for (const std::string key : {"data_dir: /d", "durability: batch", "sync_interval: 1s",
                                "segment_bytes: 1MiB", "state_checkpoint_bytes: 1MiB"}) {
    const std::string name = key.substr(0, key.find(':'));
    EXPECT_EQ(Errors("bus:\n  backend: nats\n  nats: {servers: [nats://127.0.0.1:4222]}\n  " + key +
                     "\n"),
              "t.yaml:4:" + std::to_string(3 + name.size() + 2) + ": bus." + name + ": " + name +
                  " is only used with backend: embedded");
  }
}

TEST(BusNatsConfigErrors, NatsBlockWithoutNatsBackend) {
  EXPECT_EQ(Errors("bus:\n  data_dir: /d\n  nats: {servers: [nats://127.0.0.1:4222]}\n"),
            "t.yaml:3:9: bus.nats: nats is only used with backend: nats");
}

TEST(BusNatsConfigErrors, ServersAreNatsUrls) {
  for (const std::string url : {"127.0.0.1:4222", "http://h:4222", "nats://h", "nats://h:0",
                                "nats://h:70000", "nats://u:p@h:4222", "nats://:4222"}) {
    EXPECT_EQ(Errors("bus:\n  backend: nats\n  nats: {servers: [\"" + url + "\"]}\n"),
              "t.yaml:3:20: bus.nats.servers[0]: invalid NATS server URL '" + url +
                  "': expected nats://host:port");
  }
  EXPECT_EQ(Errors("bus:\n  backend: nats\n  nats: {servers: []}\n"),
            "t.yaml:3:19: bus.nats.servers: must list at least one server");
}

TEST(BusNatsConfigErrors, ReplicasOneToFive) {
  EXPECT_NE(Errors("bus:\n  backend: nats\n  nats: {servers: [nats://h:1], replicas: 6}\n")
                .find("bus.nats.replicas"),
            std::string::npos);
  EXPECT_NE(Errors("bus:\n  backend: nats\n  nats: {servers: [nats://h:1], replicas: 0}\n")
                .find("bus.nats.replicas"),
            std::string::npos);
}

TEST(BusNatsConfigErrors, UnknownNatsKey) {
  EXPECT_NE(Errors("bus:\n  backend: nats\n  nats: {servers: [nats://h:1], token: x}\n")
                .find("unknown key 'token'"),
            std::string::npos);
}

}  // namespace
}  // namespace ferry::config
