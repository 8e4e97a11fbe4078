// The schema of Ferry's config file: which keys exist, their types, defaults and cross-checks.
// The generic strict-YAML helpers live in yaml_reader.cpp; ToJson in json.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include "config/access_loader.hpp"
#include "config/address.hpp"
#include "config/auth_loader.hpp"
#include "config/bus_loader.hpp"
#include "config/config.hpp"
#include "config/grpc_loader.hpp"
#include "config/http2_loader.hpp"
#include "config/policy_loader.hpp"
#include "config/service_protocol_loader.hpp"
#include "config/tls_loader.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config {
namespace {

using internal::Diagnostics;
using internal::Field;
using internal::MapReader;
using internal::ReadBool;
using internal::ReadDuration;
using internal::ReadInt;
using internal::ReadSequence;
using internal::ReadSize;
using internal::ReadString;

constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};
constexpr std::uint64_t kMaxHeaderBytesLimit = 64ull * 1024 * 1024;
constexpr std::uint64_t kMaxBodyBytesLimit = 1024ull * 1024 * 1024 * 1024;
constexpr int kMaxWorkers = 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Listener, service and route names end up in metrics labels and log lines: keep them tame.
bool IsName(std::string_view s, bool allow_hash) {
  if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s.front()))) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [&](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-' ||
           (allow_hash && c == '#');
  });
}

struct Seen {
  std::string name;
  YAML::Mark mark;
};

class Loader : private internal::StrictReader {
 public:
  explicit Loader(Diagnostics& diags) : StrictReader(diags) {}

  Config Load(const Field& root) {
    if (!root.node.IsNull()) ReadTop(root);
    CheckReferences();
    return std::move(config_);
  }

 private:
  std::optional<Address> ReadAddress(const Field& field, AddressUse use) {
    auto text = ReadString(field, d_);
    if (!text) return std::nullopt;
    auto address = ParseAddress(*text, use);
    if (!address) {
      Error(field, address.error().message());
      return std::nullopt;
    }
    return *address;
  }

  std::optional<std::string> ReadName(const Field& field, bool allow_hash) {
    auto name = ReadString(field, d_);
    if (name && !IsName(*name, allow_hash)) {
      Error(field, fmt::format("invalid name '{}': use letters, digits, '_', '.' and '-'{}, "
                               "starting with a letter or digit",
                               *name, allow_hash ? " and '#'" : ""));
      return std::nullopt;
    }
    return name;
  }

  void ReadTop(const Field& root) {
    MapReader top(root, d_);
    auto ints = [&](const Field& f) { return ReadInt(f, 0, kMaxWorkers, d_); };
    auto durations = [&](const Field& f) { return ReadDuration(f, d_); };
    Assign(top, "workers", config_.workers, ints);
    Assign(top, "drain_time", config_.drain_time, durations);
    if (auto admin = top.Take("admin")) ReadAdmin(*admin);
    if (auto log = top.Take("access_log")) ReadAccessLog(*log);
    ReadPolicies(top.Take("policies"));
    // Services first, so that routes can be checked against them in one pass at the end.
    if (auto services = top.Take("services")) ReadServices(*services);
    if (auto listeners = top.Take("listeners")) {
      if (auto items = ReadSequence(*listeners, d_)) {
        for (const Field& item : *items) ReadListener(item);
      }
    }
    // After the listeners, so that its listen address is checked against theirs.
    if (auto bus = top.Take("bus")) ReadBusBlock(*bus);
    if (auto store = top.Take("idempotency_store")) {
      store_written_ = true;
      config_.idempotency_store = internal::ReadIdempotencyStore(*store, d_);
    }
    if (auto mesh = top.Take("mesh")) {
      mesh_written_ = true;
      config_.mesh = internal::ReadMesh(*mesh, d_);
    }
    if (auto auth = top.Take("auth")) config_.auth = internal::ReadAuth(*auth, d_);
    if (auto authorization = top.Take("authorization")) {
      auto block = internal::ReadAuthorization(*authorization, d_);
      config_.authorization = std::move(block.authorization);
      authz_routes_ = std::move(block.routes);
    }
    top.Finish();
    if (!mesh_written_) {
      for (const Field& f : mesh_users_) {
        Error(f, "tls: mesh needs a mesh: block (the node's mesh certificate, key and CA)");
      }
    }
  }

  void ReadAdmin(const Field& field) {
    MapReader admin(field, d_);
    if (auto listen = admin.Take("listen")) {
      if (auto address = ReadAddress(*listen, AddressUse::kListener)) {
        config_.admin.listen = *address;
        admin_mark_ = listen->mark;
      }
    }
    if (auto tls = admin.Take("tls")) {
      config_.admin.tls = internal::ReadListenerTls(*tls, d_);
      if (config_.admin.tls && config_.admin.tls->mesh) mesh_users_.push_back(*tls);
    }
    admin.Finish();
  }

  void ReadAccessLog(const Field& field) {
    MapReader log(field, d_);
    Assign(log, "enabled", config_.access_log.enabled,
           [&](const Field& f) { return ReadBool(f, d_); });
    if (auto path = log.Take("path")) {
      auto text = ReadString(*path, d_);
      if (text && text->empty()) {
        Error(*path, "must not be empty (use \"stdout\" or a file path)");
      } else if (text) {
        config_.access_log.path = *text;
      }
    }
    log.Finish();
  }

  void ReadListener(const Field& field) {
    MapReader map(field, d_);
    Listener listener;
    if (auto name_field = Require(map, field, "name")) {
      if (auto name = ReadName(*name_field, false)) {
        listener.name = *name;
        CheckUnique(listener_names_, *name, name_field->mark, *name_field, "listener name");
      }
    }
    if (auto listen = Require(map, field, "listen")) {
      if (auto address = ReadAddress(*listen, AddressUse::kListener)) {
        listener.listen = *address;
        CheckListenAddress(*address, *listen, listener.name);
      }
    }
    if (auto limits = map.Take("limits")) ReadLimits(*limits, listener.limits);
    if (auto trusted = map.Take("trust_deadline_from")) {
      listener.trust_deadline_from = internal::ReadNetworks(*trusted, d_);
    }
    if (auto tls = map.Take("tls")) {
      listener.tls = internal::ReadListenerTls(*tls, d_);
      if (listener.tls && listener.tls->mesh) mesh_users_.push_back(*tls);
    }
    Assign(map, "http2", listener.http2, [&](const Field& f) { return ReadBool(f, d_); });
    if (auto routes = map.Take("routes")) {
      if (auto items = ReadSequence(*routes, d_)) {
        for (std::size_t i = 0; i < items->size(); ++i) {
          listener.routes.push_back(ReadRoute((*items)[i], listener.name, i));
        }
      }
    }
    map.Finish();
    config_.listeners.push_back(std::move(listener));
  }

  void ReadLimits(const Field& field, Limits& limits) {
    MapReader map(field, d_);
    Assign(map, "max_header_bytes", limits.max_header_bytes,
           [&](const Field& f) -> std::optional<std::uint64_t> {
             auto value = ReadSize(f, kMaxHeaderBytesLimit, d_);
             if (value && *value == 0) {
               Error(f, "must be greater than 0");
               return std::nullopt;
             }
             return value;
           });
    Assign(map, "max_headers", limits.max_headers,
           [&](const Field& f) { return ReadInt(f, 1, 10000, d_); });
    Assign(map, "max_body_bytes", limits.max_body_bytes,
           [&](const Field& f) { return ReadSize(f, kMaxBodyBytesLimit, d_); });
    auto positive = [&](const Field& f) { return Positive(f); };
    Assign(map, "header_read_timeout", limits.header_read_timeout, positive);
    Assign(map, "idle_timeout", limits.idle_timeout, positive);
    Assign(map, "request_timeout", limits.request_timeout,
           [&](const Field& f) { return ReadDuration(f, d_); });
    internal::ReadHttp2Limits(map, limits, d_);
    map.Finish();
  }

  Route ReadRoute(const Field& field, const std::string& listener, std::size_t index) {
    MapReader map(field, d_);
    Route route;
    route.name = fmt::format("{}#{}", listener, index);
    if (auto name_field = map.Take("name")) {
      if (auto name = ReadName(*name_field, true)) {
        route.name = *name;
        if (internal::IsBusOperation(*name)) {
          Error(*name_field, fmt::format("'{}' names a bus API operation in authorization rules: "
                                         "choose another route name",
                                         *name));
        }
        CheckUnique(route_names_, route.name, name_field->mark, *name_field, "route name");
      }
    } else if (!listener.empty()) {
      CheckUnique(route_names_, route.name, field.mark, field, "route name");
    }
    if (auto match = map.Take("match")) ReadMatch(*match, route.match);
    // Exactly one of service (proxied) and topic (a bus topic streamed to clients).
    auto service = map.Take("service");
    auto topic = map.Take("topic");
    if (service && topic) {
      Error(*topic, "a route names a service or a topic, not both");
    } else if (topic) {
      if (auto name = ReadString(*topic, d_)) {
        route.topic = *name;
        topic_references_.push_back({*name, topic->mark, topic->path});
      }
    } else if (auto required = service ? service : Require(map, field, "service")) {
      if (auto name = ReadString(*required, d_)) {
        route.service = *name;
        service_references_.push_back({*name, required->mark, required->path});
      }
    }
    if (auto push = map.Take("push")) {
      if (!topic) Error(*push, "push: applies to a topic route only (topic: NAME)");
      ReadRoutePush(*push, route.push);
    }
    if (auto rewrite = map.Take("rewrite_prefix")) {
      auto text = ReadString(*rewrite, d_);
      if (text && (text->empty() || text->front() != '/')) {
        Error(*rewrite, fmt::format("must start with '/', got '{}'", *text));
      } else if (text) {
        route.rewrite_prefix = *text;
      }
    }
    RouteNote note;
    if (auto timeout = map.Take("timeout")) {
      note.timeout_written = true;
      if (auto value = ReadDuration(*timeout, d_)) route.timeout = *value;
    }
    // An upgraded connection's bounds (WebSocket), in place of timeout.
    if (auto idle = map.Take("stream_idle_timeout")) {
      if (auto value = ReadDuration(*idle, d_)) route.stream_idle_timeout = *value;
    }
    if (auto max = map.Take("max_stream_duration")) {
      if (auto value = ReadDuration(*max, d_)) route.max_stream_duration = *value;
    }
    if (auto policy = map.Take("policy")) {
      if (auto name = ReadString(*policy, d_)) {
        note.policy = *name;
        policy_references_.push_back({*name, policy->mark, policy->path});
      }
    }
    Assign(map, "retry_with_idempotency_key", route.retry_with_idempotency_key,
           [&](const Field& f) { return ReadBool(f, d_); });
    if (auto limit = map.Take("rate_limit")) route.rate_limit = internal::ReadRateLimit(*limit, d_);
    if (auto fault = map.Take("fault")) route.fault = internal::ReadFault(*fault, d_);
    if (auto auth = map.Take("auth")) {
      route.auth = internal::ReadRouteAuth(*auth, d_);
      if (route.auth) provider_references_.push_back({route.auth->jwt, auth->mark, auth->path});
    }
    if (auto idempotency = map.Take("idempotency")) {
      route.idempotency = internal::ReadIdempotency(*idempotency, d_);
      note.idempotency = idempotency;
    }
    if (auto keys = map.Take("api_keys")) route.api_keys = internal::ReadApiKeys(*keys, d_);
    if (auto cors = map.Take("cors")) route.cors = internal::ReadCors(*cors, d_);
    if (auto grpc = map.Take("grpc")) {
      route.grpc = internal::ReadGrpcRoute(*grpc, d_);
      note.grpc = grpc;
    }
    map.Finish();
    route_notes_.push_back(std::move(note));
    return route;
  }

  void ReadRoutePush(const Field& field, RoutePush& push) {
    MapReader map(field, d_);
    auto positive = [&](const Field& f) { return Positive(f); };
    Assign(map, "heartbeat", push.heartbeat, positive);
    Assign(map, "retry", push.retry, positive);
    if (auto size = map.Take("buffer_bytes")) {
      auto value = ReadSize(*size, 1ull << 30, d_);
      if (value && *value < 1024) {
        Error(*size, fmt::format("must be at least 1KiB, got {}", *value));
      } else if (value) {
        push.buffer_bytes = *value;
      }
    }
    map.Finish();
  }

  std::optional<std::string> ReadPath(const Field& field) {
    auto text = ReadString(field, d_);
    if (text && (text->empty() || text->front() != '/')) {
      Error(field, fmt::format("must start with '/', got '{}'", *text));
      return std::nullopt;
    }
    return text;
  }

  void ReadMatch(const Field& field, RouteMatch& match) {
    MapReader map(field, d_);
    auto prefix = map.Take("prefix");
    auto path = map.Take("path");
    if (prefix) match.prefix = ReadPath(*prefix);
    if (path) match.path = ReadPath(*path);
    if (prefix && path) Error(*path, "a route matches on either prefix or path, not both");
    if (auto host = map.Take("host")) {
      if (auto text = ReadString(*host, d_)) {
        const bool bracketed = text->size() > 2 && text->front() == '[' && text->back() == ']' &&
                               IsIpLiteral(text->substr(1, text->size() - 2));
        if (bracketed || IsIpLiteral(*text) || IsDnsName(*text)) {
          match.host = Lower(*text);
        } else {
          Error(*host,
                fmt::format("'{}' is not a host name or IP address (no port, no wildcard)", *text));
        }
      }
    }
    if (auto methods = map.Take("methods")) ReadMethods(*methods, match.methods);
    if (auto headers = map.Take("headers")) {
      MapReader header_map(*headers, d_);
      std::set<std::string> seen;
      for (const auto& entry : header_map.TakeAll()) {
        const std::string name = Lower(entry.key);
        if (!internal::IsHeaderName(entry.key)) {
          d_.Add(entry.key_mark,
                 internal::Describe(*headers, fmt::format("invalid header name '{}'", entry.key)));
        } else if (!seen.insert(name).second) {
          d_.Add(entry.key_mark,
                 internal::Describe(*headers, fmt::format("header '{}' is listed twice (header "
                                                          "names are case-insensitive)",
                                                          entry.key)));
        } else if (auto value = ReadString(entry.value, d_)) {
          match.headers.emplace_back(name, *value);
        }
      }
    }
    map.Finish();
  }

  void ReadMethods(const Field& field, std::vector<std::string>& out) {
    auto items = ReadSequence(field, d_);
    if (!items) return;
    for (const Field& item : *items) {
      auto method = ReadString(item, d_);
      if (!method) continue;
      const std::string upper = [&] {
        std::string s = *method;
        std::transform(s.begin(), s.end(), s.begin(),
                       [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
        return s;
      }();
      const bool known = std::find(kMethods.begin(), kMethods.end(), upper) != kMethods.end();
      if (!known) {
        Error(item, fmt::format("unknown method '{}' (expected one of: {})", *method,
                                fmt::join(kMethods, ", ")));
      } else if (upper != *method) {
        Error(item, fmt::format("method '{}' must be written in uppercase: {}", *method, upper));
      } else if (std::find(out.begin(), out.end(), upper) != out.end()) {
        Error(item, fmt::format("method '{}' is listed twice", upper));
      } else {
        out.push_back(upper);
      }
    }
  }

  void ReadServices(const Field& field) {
    MapReader map(field, d_);
    for (const auto& entry : map.TakeAll()) {
      if (!IsName(entry.key, false)) {
        d_.Add(entry.key_mark,
               internal::Describe(field, fmt::format("invalid service name '{}': use letters, "
                                                     "digits, '_', '.' and '-', starting with a "
                                                     "letter or digit",
                                                     entry.key)));
        continue;
      }
      Service service;
      service.name = entry.key;
      ReadService(entry.value, service);
      config_.services.emplace(service.name, std::move(service));
    }
  }

  void ReadService(const Field& field, Service& service) {
    MapReader map(field, d_);
    if (auto endpoints = Require(map, field, "endpoints")) {
      if (auto items = ReadSequence(*endpoints, d_)) {
        if (items->empty()) Error(*endpoints, "a service needs at least one endpoint");
        std::set<std::string> seen;
        for (const Field& item : *items) {
          auto address = ReadAddress(item, AddressUse::kEndpoint);
          if (!address) continue;
          if (!seen.insert(CanonicalHost(address->host) + "|" + std::to_string(address->port))
                   .second) {
            Error(item, fmt::format("endpoint {} is listed twice", address->ToString()));
            continue;
          }
          service.endpoints.push_back(*address);
        }
      }
    }
    auto lb = map.Take("lb");
    if (lb) {
      if (auto text = ReadString(*lb, d_)) {
        if (*text == "round_robin")
          service.lb = LbPolicy::kRoundRobin;
        else if (*text == "least_request")
          service.lb = LbPolicy::kLeastRequest;
        else if (*text == "random")
          service.lb = LbPolicy::kRandom;
        else if (*text == "hash")
          service.lb = LbPolicy::kHash;
        else {
          Error(*lb, fmt::format("unknown lb '{}' (expected one of: round_robin, least_request, "
                                 "random, hash)",
                                 *text));
        }
      }
    }
    const bool wants_hash = lb && lb->node.IsScalar() && lb->node.Scalar() == "hash";
    if (auto hash_on = map.Take("hash_on")) {
      if (!wants_hash) {
        Error(*hash_on, "hash_on is only used with lb: hash");
      } else if (auto parsed = internal::ReadRequestKey(*hash_on, "hash_on", d_)) {
        service.hash_on = *parsed;
      }
    } else if (wants_hash) {
      Error(*lb, "lb: hash needs hash_on: client_address or hash_on: {header: NAME}");
    }
    Assign(map, "connect_timeout", service.connect_timeout,
           [&](const Field& f) { return Positive(f); });
    Assign(map, "max_connections_per_endpoint", service.max_connections_per_endpoint,
           [&](const Field& f) { return ReadInt(f, 1, 1'000'000, d_); });
    Assign(map, "pool_idle_timeout", service.pool_idle_timeout,
           [&](const Field& f) { return Positive(f); });
    Assign(map, "resolve_interval", service.resolve_interval,
           [&](const Field& f) { return Positive(f); });
    if (auto policy = map.Take("policy")) {
      if (auto name = ReadString(*policy, d_)) {
        service.policy = *name;
        policy_references_.push_back({*name, policy->mark, policy->path});
      }
    }
    auto health = map.Take("health");
    if (health) service.health = internal::ReadHealthCheck(*health, d_);
    if (auto tls = map.Take("tls")) {
      service.tls = internal::ReadServiceTls(*tls, d_);
      if (service.tls && service.tls->mesh) mesh_users_.push_back(*tls);
    }
    internal::ReadServiceProtocol(map, service, d_);  // after tls: (auto needs it)
    if (health && service.health && service.health->grpc_service &&
        service.protocol == UpstreamProtocol::kHttp1) {
      Error(*health,
            "a grpc: health check needs the service's protocol: http2 (or auto with tls:)");
    }
    map.Finish();
  }

  void CheckUnique(std::vector<Seen>& seen, const std::string& name, const YAML::Mark& mark,
                   const Field& where, std::string_view what) {
    auto first =
        std::find_if(seen.begin(), seen.end(), [&](const Seen& s) { return s.name == name; });
    if (first != seen.end()) {
      d_.Add(mark, internal::Describe(
                       where, fmt::format("duplicate {} '{}' (first used at {}:{})", what, name,
                                          first->mark.line + 1, first->mark.column + 1)));
      return;
    }
    seen.push_back({name, mark});
  }

  static std::string ListenKey(const Address& address) {
    return CanonicalHost(address.host) + "|" + std::to_string(address.port);
  }

  void CheckListenAddress(const Address& address, const Field& field, const std::string& owner) {
    if (address.port == 0) return;  // each port-0 listener gets its own port
    const std::string key = ListenKey(address);
    const Address& admin = config_.admin.listen;
    if (key == ListenKey(admin)) {
      Error(field, fmt::format("listen address {} is already used by the admin listener{}",
                               address.ToString(), admin_mark_ ? "" : " (its default)"));
      return;
    }
    auto first = std::find_if(listen_addresses_.begin(), listen_addresses_.end(),
                              [&](const auto& s) { return s.first.name == key; });
    if (first != listen_addresses_.end()) {
      Error(field, fmt::format("duplicate listen address {}: listener '{}' (at {}:{}) uses it",
                               address.ToString(), first->second, first->first.mark.line + 1,
                               first->first.mark.column + 1));
      return;
    }
    listen_addresses_.push_back({Seen{key, field.mark}, owner});
  }

  void ReadBusBlock(const Field& field) {
    internal::BusBlock block = internal::ReadBus(field, d_);
    for (auto& ref : block.push_services) service_references_.push_back(std::move(ref));
    if (block.listen_valid) CheckBusListenAddress(block.bus.listen, block.listen, field);
    if (block.mesh_tls) mesh_users_.push_back(*block.mesh_tls);
    if (block.jwt_provider) provider_references_.push_back(std::move(*block.jwt_provider));
    config_.bus = std::move(block.bus);
  }

  // The bus is read last, so a clash is reported on its side. listen is where bus.listen is
  // written; none when the bus keeps its default address, reported on the `bus:` block.
  void CheckBusListenAddress(const Address& address, const std::optional<Field>& listen,
                             const Field& bus) {
    if (address.port == 0) return;
    const std::string key = ListenKey(address);
    std::string user;
    if (key == ListenKey(config_.admin.listen)) {
      user = admin_mark_ ? "the admin listener" : "the admin listener (its default)";
    } else {
      auto it = std::find_if(listen_addresses_.begin(), listen_addresses_.end(),
                             [&](const auto& s) { return s.first.name == key; });
      if (it == listen_addresses_.end()) return;
      user = fmt::format("listener '{}' (at {}:{})", it->second, it->first.mark.line + 1,
                         it->first.mark.column + 1);
    }
    if (listen) {
      Error(*listen,
            fmt::format("listen address {} is already used by {}", address.ToString(), user));
    } else {
      Error(bus, fmt::format("the bus's default listen address {} is already used by {}; set "
                             "bus.listen to another address",
                             address.ToString(), user));
    }
  }

  // Policy names are known once `policies:` is read; the file may write it anywhere.
  void ReadPolicies(const std::optional<Field>& field) {
    std::vector<std::pair<std::string, Field>> written;
    if (field) {
      MapReader map(*field, d_);
      for (const auto& entry : map.TakeAll()) {
        if (IsName(entry.key, false)) {
          written.emplace_back(entry.key, entry.value);
        } else {
          d_.Add(entry.key_mark,
                 internal::Describe(*field, fmt::format("invalid policy name '{}': use letters, "
                                                        "digits, '_', '.' and '-', starting with "
                                                        "a letter or digit",
                                                        entry.key)));
        }
      }
    }
    config_.policies = internal::ReadPolicies(written, d_);
  }

  // A route's policy is its own, else its service's, else the default; its timeout is its own,
  // else its policy's. Routes are in route_notes_'s order.
  void ResolveRoutes() {
    std::size_t i = 0;
    for (Listener& listener : config_.listeners) {
      for (Route& route : listener.routes) {
        const RouteNote& note = route_notes_.at(i++);
        if (note.policy) {
          route.policy = *note.policy;
        } else if (auto service = config_.services.find(route.service);
                   service != config_.services.end()) {
          route.policy = service->second.policy;
        }
        auto policy = config_.policies.find(route.policy);
        if (!note.timeout_written && policy != config_.policies.end()) {
          route.timeout = policy->second.timeout;
        }
        // gRPC runs over HTTP/2 only (gRPC-Web aside): an HTTP/1.1 service cannot carry it.
        if (auto service = config_.services.find(route.service);
            note.grpc && service != config_.services.end() &&
            service->second.protocol == UpstreamProtocol::kHttp1) {
          Error(*note.grpc, fmt::format("grpc: needs an HTTP/2 service, and service '{}' speaks "
                                        "HTTP/1.1 (set its protocol: http2, or auto with tls:)",
                                        route.service));
        }
        if (note.idempotency && !config_.idempotency_store && !store_written_) {
          Error(*note.idempotency,
                "idempotency needs a top-level idempotency_store: {data_dir: DIR} or {redis: "
                "HOST:PORT}");
        }
      }
    }
  }

  void CheckReferences() {
    ResolveRoutes();
    CheckAuthorizationRoutes();
    for (const internal::ServiceReference& ref : policy_references_) {
      if (config_.policies.count(ref.name) != 0) continue;
      std::vector<std::string> names;
      for (const auto& [name, policy] : config_.policies) names.push_back(name);
      d_.Add(ref.mark, internal::Describe(Field{YAML::Node(), ref.mark, ref.path},
                                          fmt::format("unknown policy '{}' (defined policies: {})",
                                                      ref.name, fmt::join(names, ", "))));
    }
    for (const internal::ServiceReference& ref : provider_references_) {
      if (config_.auth.jwt.count(ref.name) != 0) continue;
      std::vector<std::string> names;
      for (const auto& [name, provider] : config_.auth.jwt) names.push_back(name);
      d_.Add(ref.mark,
             internal::Describe(
                 Field{YAML::Node(), ref.mark, ref.path + ".jwt"},
                 fmt::format("unknown JWT provider '{}' (defined under auth.jwt: {})", ref.name,
                             names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")))));
    }
    for (const internal::ServiceReference& ref : topic_references_) {
      const Field at{YAML::Node(), ref.mark, ref.path};
      if (!config_.bus) {
        d_.Add(ref.mark, internal::Describe(at, fmt::format("topic '{}': a topic route needs the "
                                                            "bus on this node (a bus: block)",
                                                            ref.name)));
      } else if (config_.bus->backend != BusBackend::kEmbedded) {
        d_.Add(ref.mark, internal::Describe(at,
                                            "topic routes need bus.backend: embedded (the "
                                            "nats backend cannot stream a topic yet)"));
      } else if (config_.bus->topics.count(ref.name) == 0) {
        std::vector<std::string> names;
        for (const auto& [name, t] : config_.bus->topics) names.push_back(name);
        d_.Add(ref.mark,
               internal::Describe(
                   at, fmt::format(
                           "unknown topic '{}' (bus topics: {})", ref.name,
                           names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")))));
      }
    }
    for (const internal::ServiceReference& ref : service_references_) {
      if (config_.services.count(ref.name) != 0) continue;
      std::vector<std::string> names;
      for (const auto& [name, service] : config_.services) names.push_back(name);
      d_.Add(ref.mark,
             internal::Describe(
                 Field{YAML::Node(), ref.mark, ref.path},
                 fmt::format("unknown service '{}' (defined services: {})", ref.name,
                             names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")))));
    }
  }

  // Every route an authorization rule names is a route of the file or a bus API operation.
  void CheckAuthorizationRoutes() {
    std::set<std::string> names;
    for (const Listener& listener : config_.listeners) {
      for (const Route& route : listener.routes) names.insert(route.name);
    }
    for (const internal::ServiceReference& ref : authz_routes_) {
      if (names.count(ref.name) != 0 || internal::IsBusOperation(ref.name)) continue;
      d_.Add(ref.mark,
             internal::Describe(
                 Field{YAML::Node(), ref.mark, ref.path},
                 fmt::format("unknown route '{}' (routes: {}; bus API operations: "
                             "{})",
                             ref.name,
                             names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")),
                             fmt::join(internal::kBusOperations, ", "))));
    }
  }

  Config config_;
  std::vector<internal::ServiceReference> authz_routes_;  // route names authorization rules write
  std::optional<YAML::Mark> admin_mark_;
  std::vector<Seen> listener_names_;
  std::vector<Seen> route_names_;
  std::vector<std::pair<Seen, std::string>> listen_addresses_;
  std::vector<internal::ServiceReference> service_references_;  // routes' and pushes' services
  std::vector<internal::ServiceReference> topic_references_;    // topic routes' topics
  // What ReadRoute saw that is resolved once the whole file is read; one per route, in order.
  struct RouteNote {
    bool timeout_written = false;
    std::optional<std::string> policy;  // as written
    std::optional<Field> idempotency;   // where it is written
    std::optional<Field> grpc;          // where it is written
  };
  std::vector<RouteNote> route_notes_;
  std::vector<internal::ServiceReference> policy_references_;    // services' and routes' policies
  std::vector<internal::ServiceReference> provider_references_;  // routes' auth.jwt
  bool mesh_written_ = false;      // `mesh:` is written (maybe invalid: then that is the error)
  std::vector<Field> mesh_users_;  // the `tls: mesh` fields, checked once `mesh:` is read
  bool store_written_ = false;     // idempotency_store is written (maybe invalid)
};

}  // namespace

Result<std::shared_ptr<const Config>> LoadString(const std::string& yaml,
                                                 const std::string& file_name) {
  Diagnostics diags(file_name);
  std::vector<YAML::Node> documents;
  try {
    documents = YAML::LoadAll(yaml);
  } catch (const YAML::Exception& e) {
    diags.Add(e.mark, fmt::format("invalid YAML: {}", e.msg));
    return Fail(ErrorCode::kInvalidArgument, diags.Render());
  }
  if (documents.size() > 1) {
    diags.Add(documents[1].Mark(), "expected a single YAML document, found more than one");
  }
  // An empty file is a valid config: an admin-only node with every default.
  const YAML::Node root = documents.empty() ? YAML::Node() : documents.front();
  Config config;
  try {
    config = Loader(diags).Load(Field{root, root.Mark(), ""});
  } catch (const YAML::Exception& e) {
    diags.Add(e.mark, e.msg);
  }
  if (!diags.empty()) return Fail(ErrorCode::kInvalidArgument, diags.Render());
  return std::make_shared<const Config>(std::move(config));
}

Result<std::shared_ptr<const Config>> LoadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Fail(ErrorCode::kNotFound, fmt::format("{}: cannot open the config file", path));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Fail(ErrorCode::kIo, fmt::format("{}: cannot read the config file", path));
  auto loaded = LoadString(text.str(), path);
  if (!loaded) return loaded;
  auto config = std::make_shared<Config>(**loaded);
  config->source_path = path;
  return std::shared_ptr<const Config>(std::move(config));
}

}  // namespace ferry::config
