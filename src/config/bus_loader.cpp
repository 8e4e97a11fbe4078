// The schema of the `bus:` block: keys, types, defaults and the checks local to the block.
// Cross-checks against the rest of the file are left to loader.cpp (see bus_loader.hpp).
#include "config/bus_loader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <string>
#include <string_view>

#include "config/access_loader.hpp"
#include "config/address.hpp"
#include "config/auth_loader.hpp"
#include "config/bus_rules.hpp"
#include "config/tls_loader.hpp"

namespace ferry::config::internal {
namespace {

constexpr std::uint64_t kMinSegmentBytes = 64ull * 1024;
constexpr std::uint64_t kMaxSegmentBytes = 4ull * 1024 * 1024 * 1024;
constexpr std::uint64_t kMinStateCheckpointBytes = 4ull * 1024;
constexpr std::uint64_t kMaxStateCheckpointBytes = 4ull * 1024 * 1024 * 1024;
constexpr std::uint64_t kMaxMessageBytesLimit = 64ull * 1024 * 1024;
constexpr std::uint64_t kMaxBytesLimit = 1024ull * 1024 * 1024 * 1024 * 1024;  // 1 PiB
constexpr std::int64_t kMaxPushConcurrency = kMaxBusPushConcurrency;
// JetStream's own bound on a stream's replicas.
constexpr std::int64_t kMaxNatsReplicas = 5;
// The log's sync thread sleeps in whole milliseconds: a shorter interval would be 0, a busy loop.
constexpr Duration kMinSyncInterval = std::chrono::milliseconds(1);

// Why `url` is not a server URL Ferry takes (nats://host:port), or nullopt. Users and
// passwords in URLs would be shown by ferry config and in logs: credentials go in their key.
std::optional<std::string> NatsUrlProblem(std::string_view url) {
  const auto fail = [&] {
    return fmt::format("invalid NATS server URL '{}': expected nats://host:port", url);
  };
  constexpr std::string_view kScheme = "nats://";
  if (!url.starts_with(kScheme)) return fail();
  std::string_view rest = url.substr(kScheme.size());
  if (rest.find_first_of("@/?# ") != std::string_view::npos) return fail();
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return fail();
  std::string_view port = rest.substr(colon + 1);
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fail();
  }
  const int number = std::stoi(std::string(port));
  if (number < 1 || number > 65535) return fail();
  return std::nullopt;
}

class BackoffReader : private StrictReader {
 public:
  explicit BackoffReader(Diagnostics& diags) : StrictReader(diags) {}

  void Read(const Field& field, Duration& initial_out, Duration& max_out, double& multiplier) {
    MapReader map(field, d_);
    auto initial = map.Take("initial");
    auto max = map.Take("max");
    bool initial_ok = true;
    bool max_ok = true;
    if (initial) {
      auto value = Positive(*initial);
      if (value) initial_out = *value;
      initial_ok = value.has_value();
    }
    if (max) {
      auto value = ReadDuration(*max, d_);
      if (value) max_out = *value;
      max_ok = value.has_value();
    }
    if (initial_ok && max_ok) {
      if (auto problem =
              BusBackoffProblem({"max", max_out, max ? "" : ", the default"},
                                {"initial", initial_out, initial ? "" : ", the default"})) {
        Error(max ? *max : *initial, *problem);
      }
    }
    Assign(map, "multiplier", multiplier,
           [&](const Field& f) { return ReadNumber(f, kMinBusBackoffMultiplier, d_); });
    map.Finish();
  }
};

class BusReader : private StrictReader {
 public:
  explicit BusReader(Diagnostics& diags) : StrictReader(diags) {}

  BusBlock Read(const Field& field) {
    MapReader map(field, d_);
    // nullopt: backend is written but invalid, so which keys belong to it is unknown.
    std::optional<BusBackend> backend = BusBackend::kEmbedded;
    if (auto field = map.Take("backend")) {
      backend.reset();
      if (auto text = ReadString(*field, d_)) {
        if (*text == "embedded") {
          backend = BusBackend::kEmbedded;
        } else if (*text == "nats") {
          backend = BusBackend::kNats;
        } else {
          Error(*field,
                fmt::format("unknown backend '{}' (expected one of: embedded, nats)", *text));
        }
      }
    }
    if (backend) out_.bus.backend = *backend;
    if (auto listen = map.Take("listen")) {
      out_.listen = *listen;
      out_.listen_valid = false;
      if (auto text = ReadString(*listen, d_)) {
        if (auto address = ParseAddress(*text, AddressUse::kListener)) {
          out_.bus.listen = *address;
          out_.listen_valid = true;
        } else {
          Error(*listen, address.error().message());
        }
      }
    }
    if (auto tls = map.Take("tls")) {
      out_.bus.tls = ReadListenerTls(*tls, d_);
      if (out_.bus.tls && out_.bus.tls->mesh) out_.mesh_tls = *tls;
    }
    if (backend == BusBackend::kNats) {
      if (auto nats = Require(map, field, "nats")) out_.bus.nats = ReadNats(*nats);
      // The embedded log's keys mean nothing to a cluster: refused, not silently ignored.
      for (std::string_view key :
           {"data_dir", "durability", "sync_interval", "segment_bytes", "state_checkpoint_bytes"}) {
        if (auto f = map.Take(key)) {
          Error(*f, fmt::format("{} is only used with backend: embedded", key));
        }
      }
    } else {
      if (auto nats = map.Take("nats")) {
        if (backend) Error(*nats, "nats is only used with backend: nats");
      }
      ReadEmbedded(map, field, backend.has_value());
    }
    Assign(map, "dedupe_window", out_.bus.dedupe_window,
           [&](const Field& f) { return ReadDuration(f, d_); });
    if (auto api = map.Take("api")) {
      MapReader api_map(*api, d_);
      if (auto keys = api_map.Take("api_keys")) out_.bus.api.api_keys = ReadApiKeys(*keys, d_);
      if (auto auth = api_map.Take("auth")) {
        out_.bus.api.auth = ReadRouteAuth(*auth, d_);
        if (out_.bus.api.auth) {
          out_.jwt_provider = ServiceReference{out_.bus.api.auth->jwt, auth->mark, auth->path};
        }
      }
      api_map.Finish();
    }
    if (auto queues = map.Take("queues")) {
      for (auto& [name, value] : Named(*queues, "queue")) {
        BusQueue queue;
        queue.name = name;
        ReadQueue(value, queue);
        out_.bus.queues.emplace(name, std::move(queue));
      }
    }
    if (auto topics = map.Take("topics")) {
      for (auto& [name, value] : Named(*topics, "topic")) {
        BusTopic topic;
        topic.name = name;
        ReadTopic(value, topic);
        out_.bus.topics.emplace(name, std::move(topic));
      }
    }
    map.Finish();
    return std::move(out_);
  }

 private:
  // The entries of a map keyed by queue, topic or subscription names; invalid names reported.
  std::vector<std::pair<std::string, Field>> Named(const Field& field, std::string_view what) {
    std::vector<std::pair<std::string, Field>> out;
    MapReader map(field, d_);
    for (const auto& entry : map.TakeAll()) {
      if (!IsBusName(entry.key)) {
        d_.Add(entry.key_mark,
               Describe(field, fmt::format("invalid {} name '{}': use 1 to 128 letters, digits, "
                                           "'_', '.' and '-', starting with a letter or digit",
                                           what, entry.key)));
        continue;
      }
      out.emplace_back(entry.key, entry.value);
    }
    return out;
  }

  // The embedded log's keys. `known`: the backend is embedded (false: written but invalid, so
  // a missing data_dir is not reported on top).
  void ReadEmbedded(MapReader& map, const Field& field, bool known) {
    std::optional<Field> dir = known ? Require(map, field, "data_dir") : map.Take("data_dir");
    if (dir) {
      auto text = ReadString(*dir, d_);
      if (text && text->empty()) {
        Error(*dir, "must not be empty");
      } else if (text) {
        out_.bus.data_dir = *text;
      }
    }
    ReadDurability(map);
    Assign(map, "segment_bytes", out_.bus.segment_bytes,
           [&](const Field& f) -> std::optional<std::uint64_t> {
             auto value = ReadSize(f, kMaxSegmentBytes, d_);
             if (value && *value < kMinSegmentBytes) {
               Error(f, fmt::format("must be at least 64KiB, got {}", f.node.Scalar()));
               return std::nullopt;
             }
             return value;
           });
    Assign(map, "state_checkpoint_bytes", out_.bus.state_checkpoint_bytes,
           [&](const Field& f) -> std::optional<std::uint64_t> {
             auto value = ReadSize(f, kMaxStateCheckpointBytes, d_);
             if (value && *value < kMinStateCheckpointBytes) {
               Error(f, fmt::format("must be at least 4KiB, got {}", f.node.Scalar()));
               return std::nullopt;
             }
             return value;
           });
  }

  BusNats ReadNats(const Field& field) {
    MapReader map(field, d_);
    BusNats nats;
    if (auto servers = Require(map, field, "servers")) {
      if (auto items = ReadSequence(*servers, d_)) {
        if (items->empty()) Error(*servers, "must list at least one server");
        for (const auto& item : *items) {
          auto text = ReadString(item, d_);
          if (!text) continue;
          if (auto problem = NatsUrlProblem(*text)) {
            Error(item, *problem);
          } else {
            nats.servers.push_back(*text);
          }
        }
      }
    }
    Assign(map, "replicas", nats.replicas,
           [&](const Field& f) { return ReadInt(f, 1, kMaxNatsReplicas, d_); });
    Assign(map, "connect_timeout", nats.connect_timeout,
           [&](const Field& f) { return Positive(f); });
    Assign(map, "credentials", nats.credentials, [&](const Field& f) -> std::optional<std::string> {
      auto text = ReadString(f, d_);
      if (text && text->empty()) {
        Error(f, "must not be empty (leave the key out for no credentials)");
        return std::nullopt;
      }
      return text;
    });
    map.Finish();
    return nats;
  }

  void ReadDurability(MapReader& map) {
    // nullopt: durability is written but invalid, so whether sync_interval applies is unknown.
    std::optional<BusDurability> durability = BusDurability::kBatch;
    if (auto field = map.Take("durability")) {
      durability.reset();
      if (auto text = ReadString(*field, d_)) {
        if (*text == "batch") {
          durability = BusDurability::kBatch;
        } else if (*text == "interval") {
          durability = BusDurability::kInterval;
        } else {
          Error(*field,
                fmt::format("unknown durability '{}' (expected one of: batch, interval)", *text));
        }
      }
    }
    if (durability) out_.bus.durability = *durability;
    if (auto field = map.Take("sync_interval")) {
      if (durability == BusDurability::kBatch) {
        Error(*field, "sync_interval is only used with durability: interval");
      } else if (auto value = ReadDuration(*field, d_)) {
        if (*value < kMinSyncInterval) {
          Error(*field, fmt::format("must be at least 1ms, got {}", field->node.Scalar()));
        } else {
          out_.bus.sync_interval = *value;
        }
      }
    }
  }

  void ReadQueue(const Field& field, BusQueue& queue) {
    MapReader map(field, d_);
    const Lease lease = ReadDelivery(map, queue.delivery);
    ReadStorage(map, queue.storage);
    if (auto push = map.Take("push")) queue.push = ReadPush(*push, queue.delivery, lease);
    ReadEventDefaults(map, queue.event_defaults);
    map.Finish();
  }

  void ReadTopic(const Field& field, BusTopic& topic) {
    MapReader map(field, d_);
    ReadStorage(map, topic.storage);
    if (auto subscriptions = map.Take("subscriptions")) {
      for (auto& [name, value] : Named(*subscriptions, "subscription")) {
        BusSubscription subscription;
        subscription.name = name;
        ReadSubscription(value, subscription);
        topic.subscriptions.emplace(name, std::move(subscription));
      }
    }
    ReadEventDefaults(map, topic.event_defaults);
    map.Finish();
  }

  void ReadSubscription(const Field& field, BusSubscription& subscription) {
    MapReader map(field, d_);
    const Lease lease = ReadDelivery(map, subscription.delivery);
    if (auto filter = map.Take("filter")) ReadFilter(*filter, subscription.filter);
    Assign(map, "from_beginning", subscription.from_beginning,
           [&](const Field& f) { return ReadBool(f, d_); });
    if (auto push = map.Take("push")) {
      subscription.push = ReadPush(*push, subscription.delivery, lease);
    }
    map.Finish();
  }

  // Where a delivery's lease came from (a push's timeout is checked against a valid one).
  enum class Lease { kDefault, kGiven, kInvalid };

  // The delivery keys sit flat in a queue's or subscription's map.
  Lease ReadDelivery(MapReader& map, BusDelivery& delivery) {
    Lease lease = Lease::kDefault;
    if (auto field = map.Take("lease")) {
      auto value = Positive(*field);
      if (value) delivery.lease = *value;
      lease = value ? Lease::kGiven : Lease::kInvalid;
    }
    Assign(map, "max_deliveries", delivery.max_deliveries, [&](const Field& f) {
      return ReadInt(f, 0, std::numeric_limits<std::uint32_t>::max(), d_);
    });
    if (auto backoff = map.Take("backoff")) {
      ReadBackoff(*backoff, delivery.backoff.initial, delivery.backoff.max,
                  delivery.backoff.multiplier, d_);
    }
    return lease;
  }

  // The storage keys sit flat in a queue's or topic's map.
  void ReadStorage(MapReader& map, BusStorage& storage) {
    auto message_bytes = map.Take("max_message_bytes");
    bool message_bytes_ok = true;
    if (message_bytes) {
      auto value = ReadSize(*message_bytes, kMaxMessageBytesLimit, d_);
      if (value && *value == 0) {
        Error(*message_bytes, "must be greater than 0");
      } else if (value) {
        storage.max_message_bytes = *value;
      }
      message_bytes_ok = value && *value != 0;
    }
    auto max_bytes = map.Take("max_bytes");
    if (max_bytes) {
      if (auto value = ReadSize(*max_bytes, kMaxBytesLimit, d_)) {
        storage.max_bytes = *value;
        if (message_bytes_ok && *value != 0 && *value < storage.max_message_bytes) {
          Error(*max_bytes, fmt::format("{} bytes cannot hold one message of max_message_bytes "
                                        "({} bytes{}); use 0 for no limit",
                                        *value, storage.max_message_bytes,
                                        message_bytes ? "" : ", the default"));
        }
      }
    }
    Assign(map, "max_age", storage.max_age, [&](const Field& f) { return ReadDuration(f, d_); });
  }

  // default_source and default_type sit flat in a queue's or topic's map. Each delivered event
  // must pass CloudEvents parsers: the source a URI-reference, the type a non-empty string.
  void ReadEventDefaults(MapReader& map, BusEventDefaults& defaults) {
    Assign(map, "default_source", defaults.default_source,
           [&](const Field& f) -> std::optional<std::string> {
             auto text = ReadString(f, d_);
             if (text && !IsUriReference(*text)) {
               Error(f, fmt::format("'{}' is not a URI-reference (RFC 3986), like /shop/orders "
                                    "or https://shop.example/orders",
                                    *text));
               return std::nullopt;
             }
             return text;
           });
    Assign(map, "default_type", defaults.default_type,
           [&](const Field& f) -> std::optional<std::string> {
             auto text = ReadString(f, d_);
             if (text && (text->empty() || std::any_of(text->begin(), text->end(), [](char c) {
                            return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                          }))) {
               Error(f,
                     "must be a non-empty string without control characters, like "
                     "com.example.order.created");
               return std::nullopt;
             }
             return text;
           });
  }

  // `delivery` is the queue's or subscription's, read before its push, its lease from `lease`.
  std::optional<BusPush> ReadPush(const Field& field, const BusDelivery& delivery, Lease lease) {
    MapReader map(field, d_);
    BusPush push;
    bool ok = map.ok();
    if (auto service = Require(map, field, "service")) {
      if (auto name = ReadString(*service, d_)) {
        push.service = *name;
        out_.push_services.push_back({*name, service->mark, service->path});
      } else {
        ok = false;
      }
    } else {
      ok = false;
    }
    if (auto path = map.Take("path")) {
      auto text = ReadString(*path, d_);
      if (text) {
        if (auto problem = BusPushPathProblem(*text)) {
          Error(*path, *problem);
        } else {
          push.path = *text;
        }
      }
    }
    auto timeout = map.Take("timeout");
    bool timeout_ok = true;
    if (timeout) {
      auto value = Positive(*timeout);
      if (value) push.timeout = *value;
      timeout_ok = value.has_value();
    }
    // A push still waiting for its answer when the lease ends would be delivered again
    // meanwhile (a second, parallel delivery), and its ack would then be stale.
    if (timeout_ok && lease != Lease::kInvalid) {
      if (auto problem = BusPushTimeoutProblem(
              {"push timeout", push.timeout, timeout ? "" : ", the default"},
              {"the lease", delivery.lease, lease == Lease::kGiven ? "" : ", the default"})) {
        Error(timeout ? *timeout : field, *problem);
      }
    }
    Assign(map, "concurrency", push.concurrency,
           [&](const Field& f) { return ReadInt(f, 1, kMaxPushConcurrency, d_); });
    map.Finish();
    if (!ok) return std::nullopt;
    return push;
  }

  void ReadFilter(const Field& field, BusFilter& filter) {
    MapReader map(field, d_);
    auto pattern = [&](const Field& f) -> std::optional<std::string> {
      auto text = ReadString(f, d_);
      if (text) {
        if (auto problem = BusFilterProblem(*text)) {
          Error(f, *problem);
          return std::nullopt;
        }
      }
      return text;
    };
    Assign(map, "type", filter.type, pattern);
    Assign(map, "source", filter.source, pattern);
    Assign(map, "subject", filter.subject, pattern);
    map.Finish();
  }

  BusBlock out_;
};

}  // namespace

BusBlock ReadBus(const Field& field, Diagnostics& diags) { return BusReader(diags).Read(field); }

void ReadBackoff(const Field& field, Duration& initial, Duration& max, double& multiplier,
                 Diagnostics& diags) {
  BackoffReader(diags).Read(field, initial, max, multiplier);
}

}  // namespace ferry::config::internal
