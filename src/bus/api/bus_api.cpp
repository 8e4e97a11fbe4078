// The routes of the bus API (see docs/bus.md). Every handler answers JSON; errors have the shape
// {"error": {"code", "status", "message"}} and change nothing.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cmath>

#include "bus/api/await_callback.hpp"
#include "bus/api/bus_service_impl.hpp"
#include "bus/api/cloudevents.hpp"
#include "bus/api/subscription_put.hpp"
#include "config/bus_rules.hpp"
#include "core/units.hpp"
#include "observability/access_log_entry.hpp"
#include "observability/json_text.hpp"

namespace ferry::bus {
namespace {

using Clock = std::chrono::steady_clock;

ApiResponse Json(int status, const boost::json::value& v) {
  return {status, observability::JsonText(v) + "\n"};
}
// Most answers are objects: written without copying them into a value first.
ApiResponse Json(int status, const boost::json::object& o) {
  return {status, observability::JsonText(o) + "\n"};
}

// An answer known before any work, as the Task that Handle returns.
Task<ApiResponse> Immediate(ApiResponse response) { co_return response; }

// The status and code the API answers a broker error with.
struct ErrorKind {
  int status;
  std::string_view code;
};

ErrorKind Classify(const Error& error) {
  switch (error.code()) {
    case ErrorCode::kNotFound:
      return {404, "not_found"};
    case ErrorCode::kInvalidArgument:
      return {400, "bad_request"};
    case ErrorCode::kResourceExhausted:
      return {413, "too_large"};
    case ErrorCode::kNoSpace:
      return {507, "insufficient_storage"};
    case ErrorCode::kFull:
      return {429, "full"};
    case ErrorCode::kFailedPrecondition:
      return {409, "conflict"};
    default:
      return {500, "internal"};
  }
}

// Maps a broker error to the API's answer.
ApiResponse FromError(const Error& error) {
  const ErrorKind kind = Classify(error);
  return ErrorReply(kind.status, kind.code, error.message());
}

// A path's segments, empty ones skipped: "/v1/queues/q/messages" -> v1, queues, q, messages.
// No API path has more than 7; a longer one keeps its first 8 and matches no route.
struct PathParts {
  std::array<std::string_view, 8> items;
  std::size_t count = 0;
  std::size_t size() const { return count; }
  std::string_view operator[](std::size_t i) const { return items[i]; }
};

PathParts SplitPath(std::string_view path) {
  PathParts parts;
  while (!path.empty() && parts.count < parts.items.size()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    const std::size_t slash = path.find('/');
    parts.items[parts.count++] = path.substr(0, slash);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return parts;
}

// The destination of a publish (POST /v1/queues/{q}/messages, POST /v1/topics/{t}/events).
std::optional<Destination> PublishDestination(const http::RequestHead& request,
                                              const PathParts& parts) {
  if (request.method != "POST") return std::nullopt;
  if (parts.size() != 4 || parts[0] != "v1") return std::nullopt;
  if (parts[1] == "queues" && parts[3] == "messages") {
    return Destination::Queue(std::string(parts[2]));
  }
  if (parts[1] == "topics" && parts[3] == "events") {
    return Destination::Topic(std::string(parts[2]));
  }
  return std::nullopt;
}

// What an API path allows, and the queue, topic or subscription names in it.
struct RouteShape {
  std::string_view allow;  // the methods, as the Allow header lists them
  std::array<std::string_view, 2> names;
};

// The shape of an API path (nullopt: no such path). Names are not checked here.
std::optional<RouteShape> ShapeOf(const PathParts& p) {
  const std::size_t n = p.size();
  if (n < 2 || p[0] != "v1" || (p[1] != "queues" && p[1] != "topics")) return std::nullopt;
  if (n == 2) return RouteShape{"GET", {}};
  const std::string_view name = p[2];
  // The verbs under an inbox (a queue, or a subscription), from `at` on.
  const auto inbox_verbs =
      [&p, n](std::size_t at, std::array<std::string_view, 2> names) -> std::optional<RouteShape> {
    const std::string_view verb = p[at];
    if (n == at + 1) {
      if (verb == "messages") return RouteShape{"GET", names};
      if (verb == "ack" || verb == "nack" || verb == "extend") return RouteShape{"POST", names};
      if (verb == "dead-letters") return RouteShape{"GET", names};
      if (verb == "replay" && at == 5) return RouteShape{"POST", names};
    }
    if (n == at + 2 && verb == "dead-letters" && p[at + 1] == "replay") {
      return RouteShape{"POST", names};
    }
    return std::nullopt;
  };
  if (n == 3) return RouteShape{"GET", {name, {}}};
  if (p[1] == "queues") {
    if (n == 4 && p[3] == "messages") return RouteShape{"GET, POST", {name, {}}};
    return inbox_verbs(3, {name, {}});
  }
  if (n == 4 && p[3] == "events") return RouteShape{"POST", {name, {}}};
  if (p[3] != "subscriptions") return std::nullopt;
  if (n == 4) return RouteShape{"GET", {name, {}}};
  if (n == 5) return RouteShape{"GET, PUT, DELETE", {name, p[4]}};
  return inbox_verbs(5, {name, p[4]});
}

bool AllowsMethod(std::string_view allow, std::string_view method) {
  while (!allow.empty()) {
    const std::size_t comma = allow.find(',');
    if (allow.substr(0, comma) == method) return true;
    if (comma == std::string_view::npos) break;
    allow.remove_prefix(comma + 1);
    while (!allow.empty() && allow.front() == ' ') allow.remove_prefix(1);
  }
  return false;
}

// The value of ?name= in a query string ("" if absent); no percent-decoding is needed for the
// numbers and durations the API takes.
std::string QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      return eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

// ?format= of a pull or a dead-letter listing: "full" (the default) or "event".
Result<MessageFormat> FormatParam(std::string_view query) {
  const std::string format = QueryParam(query, "format");
  if (format.empty() || format == "full") return MessageFormat::kFull;
  if (format == "event") return MessageFormat::kEvent;
  return Fail(ErrorCode::kInvalidArgument, "format must be full or event");
}

Result<boost::json::object> ParseObject(std::string_view body) {
  if (body.empty()) return boost::json::object();
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    return Fail(ErrorCode::kInvalidArgument, "the body must be a JSON object");
  }
  return std::move(v.as_object());
}

Result<std::vector<std::string>> StringList(const boost::json::object& o, std::string_view key,
                                            bool required) {
  std::vector<std::string> out;
  auto it = o.find(key);
  if (it == o.end()) {
    if (required) return Fail(ErrorCode::kInvalidArgument, fmt::format("missing '{}'", key));
    return out;
  }
  if (!it->value().is_array()) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("'{}' must be an array of strings", key));
  }
  for (const auto& v : it->value().as_array()) {
    if (!v.is_string()) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("'{}' must be an array of strings", key));
    }
    out.emplace_back(v.as_string());
  }
  if (required && out.empty()) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("'{}' must not be empty", key));
  }
  return out;
}

Result<std::optional<Duration>> DurationField(const boost::json::object& o, std::string_view key) {
  auto it = o.find(key);
  if (it == o.end()) return std::optional<Duration>();
  if (!it->value().is_string()) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' must be a duration like \"5s\"", key));
  }
  auto d = ParseDuration(it->value().as_string());
  if (!d) return tl::unexpected(d.error());
  return std::optional<Duration>(*d);
}

const char* OutcomeName(SettleOutcome o) {
  switch (o) {
    case SettleOutcome::kOk:
      return "ok";
    case SettleOutcome::kStale:
      return "stale";
    case SettleOutcome::kInvalid:
      return "invalid";
  }
  return "invalid";
}

// The error object of the API's error shape.
boost::json::object ErrorObject(int status, std::string_view code, std::string_view message) {
  boost::json::object e;
  e["code"] = code;
  e["status"] = status;
  e["message"] = message;
  return e;
}

// The answer to a batch whose event ids[results.size()] failed with `error`: the status and
// `error` of that failure (so a client that reads only those sees a failed request), the
// number of events stored before it, and a result for every event: the stored ones as
// published, then the failed one, then the ones not attempted (424, failed dependency).
ApiResponse BatchFailure(const std::vector<std::string>& ids, boost::json::array results,
                         const Error& error) {
  const std::size_t failed = results.size();
  const ErrorKind kind = Classify(error);
  boost::json::object entry;
  entry["id"] = ids[failed];
  entry["error"] = ErrorObject(kind.status, kind.code, error.message());
  results.push_back(std::move(entry));
  const std::string skipped =
      fmt::format("not attempted: event {} (id {}) failed before it", failed + 1, ids[failed]);
  for (std::size_t i = failed + 1; i < ids.size(); ++i) {
    boost::json::object e;
    e["id"] = ids[i];
    e["error"] = ErrorObject(424, "not_attempted", skipped);
    results.push_back(std::move(e));
  }
  boost::json::object o;
  o["error"] = ErrorObject(kind.status, kind.code,
                           fmt::format("event {} of {} (id {}): {}", failed + 1, ids.size(),
                                       ids[failed], error.message()));
  o["stored"] = failed;
  o["results"] = std::move(results);
  return Json(kind.status, o);
}

}  // namespace

ApiResponse ErrorReply(int status, std::string_view code, std::string_view message) {
  boost::json::object o;
  o["error"] = ErrorObject(status, code, message);
  return Json(status, o);
}

namespace {

// The answer to a request whose path names something invalid or whose method the path does not
// take, whatever its body; nullopt for any other request (an unknown path included).
std::optional<ApiResponse> RouteError(const http::RequestHead& request, const PathParts& parts) {
  const auto shape = ShapeOf(parts);
  if (!shape) return std::nullopt;
  for (std::string_view name : shape->names) {
    if (name.data() != nullptr && !config::IsBusName(name)) {
      return ErrorReply(400, "bad_request",
                        fmt::format("invalid name '{}': names are 1 to 128 of A-Z a-z 0-9 . _ -, "
                                    "starting with a letter or digit",
                                    name));
    }
  }
  if (!AllowsMethod(shape->allow, request.method)) {
    ApiResponse r = ErrorReply(405, "method_not_allowed",
                               fmt::format("{} {} is not supported; allowed: {}", request.method,
                                           request.path(), shape->allow));
    r.allow = std::string(shape->allow);
    return r;
  }
  return std::nullopt;
}

}  // namespace

Task<ApiResponse> BusServiceImpl::Handle(const http::RequestHead& request, std::string_view body,
                                         const std::function<bool()>& client_alive) {
  const PathParts parts = SplitPath(request.path());
  if (auto error = RouteError(request, parts)) return Immediate(std::move(*error));
  // A publish goes straight to its coroutine: the hot path, without Route's frame.
  if (auto to = PublishDestination(request, parts)) return Publish(std::move(*to), request, body);
  return Route(request, body, client_alive);
}

std::optional<ApiResponse> BusServiceImpl::AnswerBeforeBody(const http::RequestHead& request) {
  const PathParts parts = SplitPath(request.path());
  if (!ShapeOf(parts)) {
    return ErrorReply(404, "not_found",
                      fmt::format("no bus endpoint {} {}", request.method, request.path()));
  }
  if (auto error = RouteError(request, parts)) return error;
  if (auto to = PublishDestination(request, parts)) {
    const bool queue = to->kind == Destination::Kind::kQueue;
    const std::vector<std::string> names = queue ? broker_->Queues() : broker_->Topics();
    if (std::find(names.begin(), names.end(), to->name) == names.end()) {
      return ErrorReply(404, "not_found", (queue ? "no queue " : "no topic ") + to->name);
    }
  }
  return std::nullopt;
}

Task<ApiResponse> BusServiceImpl::Route(const http::RequestHead& request, std::string_view body,
                                        const std::function<bool()>& client_alive) {
  const PathParts parts = SplitPath(request.path());
  const std::string& m = request.method;
  const std::size_t n = parts.size();
  if (n < 2 || parts[0] != "v1" || (parts[1] != "queues" && parts[1] != "topics")) {
    co_return ErrorReply(404, "not_found", fmt::format("no bus endpoint {}", request.path()));
  }
  const bool queues = parts[1] == "queues";
  if (n == 2 && m == "GET") {
    boost::json::array names;
    for (const auto& name : queues ? broker_->Queues() : broker_->Topics())
      names.push_back(boost::json::string(name));
    boost::json::object o;
    o[queues ? "queues" : "topics"] = std::move(names);
    co_return Json(200, o);
  }
  if (n < 3)
    co_return ErrorReply(404, "not_found", "no bus endpoint " + std::string(request.path()));
  const std::string name(parts[2]);

  // The inbox (queue or subscription) a consumer path names, and the rest of the path.
  std::optional<Inbox> inbox;
  std::size_t rest = 3;
  if (queues) {
    inbox = Inbox::Queue(name);
  } else if (n >= 5 && parts[3] == "subscriptions") {
    inbox = Inbox::Subscription(name, std::string(parts[4]));
    rest = 5;
  }

  if (queues && n == 3 && m == "GET") co_return QueueStatsJson(name);
  if (!queues && n == 3 && m == "GET") co_return TopicStatsJson(name);
  if (!queues && n == 4 && parts[3] == "subscriptions" && m == "GET") {
    auto subs = broker_->Subscriptions(name);
    if (!subs) co_return FromError(subs.error());
    boost::json::array names;
    for (const auto& s : *subs) names.push_back(boost::json::string(s));
    boost::json::object o;
    o["subscriptions"] = std::move(names);
    co_return Json(200, o);
  }
  if (!queues && n == 5 && parts[3] == "subscriptions") {
    const std::string sub_name(parts[4]);
    if (m == "PUT") co_return co_await PutSubscription(name, sub_name, body);
    if (m == "GET") co_return SubscriptionStatsJson(name, sub_name);
    if (m == "DELETE") co_return co_await DeleteSubscription(name, sub_name);
  }
  if (inbox) {
    const std::size_t tail = n - rest;
    const std::string_view verb = tail >= 1 ? parts[rest] : std::string_view();
    if (tail == 1 && verb == "messages" && m == "GET") {
      co_return co_await Receive(*inbox, request, client_alive);
    }
    if (tail == 1 && (verb == "ack" || verb == "nack" || verb == "extend") && m == "POST") {
      const std::string verb_name(verb);
      co_return co_await Settle(*inbox, verb_name, body);
    }
    if (tail == 1 && verb == "dead-letters" && m == "GET") co_return ListDead(*inbox, request);
    if (tail == 2 && verb == "dead-letters" && parts[rest + 1] == "replay" && m == "POST") {
      co_return co_await ReplayDead(*inbox, body);
    }
    if (!inbox->is_queue() && tail == 1 && verb == "replay" && m == "POST") {
      co_return ReplaySubscription(inbox->topic, inbox->name, body);
    }
  }
  co_return ErrorReply(404, "not_found",
                       fmt::format("no bus endpoint {} {}", request.method, request.path()));
}

PublishSeries& BusServiceImpl::SeriesFor(const Destination& to) {
  auto key = std::make_pair(to.kind, to.name);
  auto it = publish_series_.find(key);
  if (it != publish_series_.end()) return it->second;
  const std::string label = (to.kind == Destination::Kind::kQueue ? "queue/" : "topic/") + to.name;
  const PublishSeries series{.stored = &metrics_.published->Get(label, "stored"),
                             .duplicate = &metrics_.published->Get(label, "duplicate"),
                             .rejected = &metrics_.published->Get(label, "rejected"),
                             .latency = &metrics_.publish_latency->Get(label)};
  return publish_series_.emplace(std::move(key), series).first->second;
}

EventDefaults BusServiceImpl::DefaultsFor(const Destination& to) const {
  EventDefaults out{DefaultEventSource(to), std::string(kDefaultEventType)};
  const auto apply = [&out](const auto& map, const std::string& name) {
    auto it = map.find(name);
    if (it == map.end()) return;
    const config::BusEventDefaults& defaults = it->second.event_defaults;
    if (!defaults.default_source.empty()) out.source = defaults.default_source;
    if (!defaults.default_type.empty()) out.type = defaults.default_type;
  };
  if (to.kind == Destination::Kind::kQueue) {
    apply(config_->bus->queues, to.name);
  } else {
    apply(config_->bus->topics, to.name);
  }
  return out;
}

EventDefaults BusServiceImpl::DefaultsFor(const Inbox& inbox) const {
  return DefaultsFor(inbox.is_queue() ? Destination::Queue(inbox.name)
                                      : Destination::Topic(inbox.topic));
}

namespace {

// {"id":...,"sequence":...,"duplicate":...}: the answer to a single publish, the hot path, written
// directly (what boost::json would write, without building a tree first).
ApiResponse SinglePublishAnswer(const PublishResult& r) {
  ApiResponse out{.status = 201, .body = {}};
  out.body.reserve(64 + r.id.size());
  out.body.append("{\"id\":\"");
  observability::AppendJsonStringContent(r.id, out.body);
  out.body.append("\",\"sequence\":");
  char digits[24];
  out.body.append(digits, std::to_chars(digits, digits + sizeof(digits), r.sequence).ptr);
  out.body.append(r.duplicate ? ",\"duplicate\":true}\n" : ",\"duplicate\":false}\n");
  return out;
}

}  // namespace

Task<ApiResponse> BusServiceImpl::Publish(Destination to, const http::RequestHead& request,
                                          std::string_view body) {
  const auto start = Clock::now();
  PublishSeries& series = SeriesFor(to);
  auto events = ParsePublish(request.headers, body, DefaultsFor(to));
  if (!events) {
    series.rejected->Add(slot_);
    co_return FromError(events.error());
  }
  // ?delay=5s or ?deliver_at=RFC3339 delay every event of the request.
  const std::string delay = QueryParam(request.query(), "delay");
  const std::string deliver_at = QueryParam(request.query(), "deliver_at");
  std::optional<BusTime> at;
  if (!delay.empty()) {
    auto d = ParseDuration(delay);
    if (!d) co_return ErrorReply(400, "bad_request", d.error().message());
    at = std::chrono::system_clock::now() + *d;
  } else if (!deliver_at.empty()) {
    auto t = ParseRfc3339(deliver_at);
    if (!t) co_return ErrorReply(400, "bad_request", t.error().message());
    at = *t;
  }
  // A batch answers one result per event, in order, even when it fails part way: events are
  // published one after another, and the first failure stops the batch (so a retry from there
  // keeps their order), leaving the events before it stored.
  const bool batch = IsBatchPublish(request.headers);
  if (!batch && events->size() == 1) {  // the common case, without the batch bookkeeping
    Message& message = events->front();
    if (at) message.deliver_at = at;
    const auto start_one = [this, &to, &message](auto done) {
      broker_->Publish(to, std::move(message), std::move(done));
    };
    auto result = co_await AwaitCallback<Result<PublishResult>>(start_one);
    ArmTick();
    if (!result) {
      series.rejected->Add(slot_);
      co_return FromError(result.error());
    }
    (result->duplicate ? series.duplicate : series.stored)->Add(slot_);
    series.latency->Observe(slot_, std::chrono::duration<double>(Clock::now() - start).count());
    co_return SinglePublishAnswer(*result);
  }
  std::vector<std::string> ids;
  for (const Message& message : *events) ids.push_back(message.id);
  boost::json::array results;
  for (Message& message : *events) {
    if (at) message.deliver_at = at;
    const auto start = [this, &to, &message](auto done) {
      broker_->Publish(to, std::move(message), std::move(done));
    };
    auto result = co_await AwaitCallback<Result<PublishResult>>(start);
    if (!result) {
      series.rejected->Add(slot_);
      ArmTick();
      if (!batch) co_return FromError(result.error());
      co_return BatchFailure(ids, std::move(results), result.error());
    }
    (result->duplicate ? series.duplicate : series.stored)->Add(slot_);
    boost::json::object r;
    r["id"] = result->id;
    r["sequence"] = result->sequence;
    r["duplicate"] = result->duplicate;
    results.push_back(std::move(r));
  }
  series.latency->Observe(slot_, std::chrono::duration<double>(Clock::now() - start).count());
  ArmTick();
  if (!batch) co_return Json(201, results[0]);
  boost::json::object o;
  o["stored"] = results.size();
  o["results"] = std::move(results);
  co_return Json(201, o);
}

Task<ApiResponse> BusServiceImpl::Receive(const Inbox& inbox, const http::RequestHead& request,
                                          const std::function<bool()>& client_alive) {
  std::size_t max = 1;
  if (auto v = QueryParam(request.query(), "max"); !v.empty()) {
    char* end = nullptr;
    const long parsed = std::strtol(v.c_str(), &end, 10);
    if (*end != '\0' || parsed < 1 || parsed > 1000) {
      co_return ErrorReply(400, "bad_request", "max must be an integer from 1 to 1000");
    }
    max = static_cast<std::size_t>(parsed);
  }
  Duration wait = Duration::zero();
  if (auto v = QueryParam(request.query(), "wait"); !v.empty()) {
    auto d = ParseDuration(v);
    if (!d || *d > std::chrono::seconds(60)) {
      co_return ErrorReply(400, "bad_request", "wait must be a duration of at most 60s, like 20s");
    }
    wait = *d;
  }
  const auto format = FormatParam(request.query());
  if (!format) co_return FromError(format.error());
  const auto deadline = Clock::now() + wait;
  const std::string key = inbox.ToString();
  for (bool waited = false;; waited = true) {
    // After a wait, take nothing for a client that has gone: it would stay leased to nobody.
    if (waited && !client_alive()) co_return ApiResponse{204, ""};
    const std::uint64_t seen = Notifications(key);
    const auto start = [this, &inbox, max](auto done) {
      broker_->Receive(inbox, max, std::move(done));
    };
    auto got = co_await AwaitCallback<Result<std::vector<Delivery>>>(start);
    if (!got) co_return FromError(got.error());
    ArmTick();
    if (!got->empty()) {
      // Written as text: each message's data goes out as the bytes stored.
      ApiResponse answer{.status = 200, .body = "{\"messages\":["};
      const EventDefaults defaults = DefaultsFor(inbox);
      const auto now = std::chrono::system_clock::now();
      for (const Delivery& d : *got) {
        metrics_.deliveries->Get(key, "pull").Add(slot_);
        if (d.attempt == 1) {
          metrics_.end_to_end->Get(key).Observe(
              slot_, std::chrono::duration<double>(now - d.message.published_at).count());
        }
        if (&d != &got->front()) answer.body.push_back(',');
        AppendDeliveryJson(d, defaults, *format, answer.body);
      }
      answer.body.append("]}\n");
      co_return answer;
    }
    if (Clock::now() >= deadline) co_return ApiResponse{204, ""};
    if (!co_await WaitReady(key, seen, deadline)) co_return ApiResponse{204, ""};
  }
}

Task<ApiResponse> BusServiceImpl::Settle(const Inbox& inbox, const std::string& verb,
                                         std::string_view body) {
  auto o = ParseObject(body);
  if (!o) co_return FromError(o.error());
  auto receipts = StringList(*o, "receipts", true);
  if (!receipts) co_return FromError(receipts.error());
  Result<std::vector<SettleOutcome>> outcomes = std::vector<SettleOutcome>();
  if (verb == "extend") {
    auto lease = DurationField(*o, "lease");
    if (!lease) co_return FromError(lease.error());
    if (!*lease)
      co_return ErrorReply(400, "bad_request", "missing 'lease' (the new lease, like \"30s\")");
    outcomes = broker_->Extend(inbox, *receipts, **lease);
  } else {
    std::optional<BusDuration> delay;
    if (verb == "nack") {
      auto d = DurationField(*o, "delay");
      if (!d) co_return FromError(d.error());
      if (*d) delay = **d;
    }
    const bool ack = verb == "ack";
    std::vector<std::string>& list = *receipts;
    const auto start = [this, ack, &inbox, &delay, &list](auto done) {
      if (ack) {
        broker_->Ack(inbox, std::move(list), std::move(done));
      } else {
        broker_->Nack(inbox, std::move(list), delay, std::move(done));
      }
    };
    outcomes = co_await AwaitCallback<Result<std::vector<SettleOutcome>>>(start);
  }
  ArmTick();
  if (!outcomes) co_return FromError(outcomes.error());
  // One outcome per receipt. Any invalid receipt makes it a 400, else any stale one a 409;
  // each receipt's own result is in the body either way (the others were applied).
  boost::json::array results;
  int status = 200;
  for (SettleOutcome outcome : *outcomes) {
    results.push_back(boost::json::string(OutcomeName(outcome)));
    if (outcome == SettleOutcome::kInvalid) status = 400;
    if (outcome == SettleOutcome::kStale && status == 200) status = 409;
  }
  boost::json::object out;
  out["results"] = std::move(results);
  if (status != 200) {
    boost::json::object e;
    e["code"] = status == 400 ? "invalid_receipt" : "stale_receipt";
    e["status"] = status;
    e["message"] = status == 400 ? "a receipt is malformed or names no delivery of this inbox"
                                 : "a receipt names an earlier delivery; it was not applied";
    out["error"] = std::move(e);
  }
  co_return Json(status, out);
}

ApiResponse BusServiceImpl::ListDead(const Inbox& inbox, const http::RequestHead& request) {
  std::size_t max = 100;
  std::uint64_t after = 0;
  if (auto v = QueryParam(request.query(), "max"); !v.empty())
    max = std::strtoul(v.c_str(), nullptr, 10);
  if (auto v = QueryParam(request.query(), "after"); !v.empty())
    after = std::strtoull(v.c_str(), nullptr, 10);
  if (max == 0 || max > 1000) return ErrorReply(400, "bad_request", "max must be from 1 to 1000");
  const auto format = FormatParam(request.query());
  if (!format) return FromError(format.error());
  auto dead = broker_->DeadLetters(inbox, max, after);
  if (!dead) return FromError(dead.error());
  ApiResponse answer{.status = 200, .body = "{\"dead_letters\":["};
  const EventDefaults defaults = DefaultsFor(inbox);
  for (const DeadLetter& d : *dead) {
    if (&d != &dead->front()) answer.body.push_back(',');
    AppendDeadLetterJson(d, defaults, *format, answer.body);
  }
  answer.body.append("]}\n");
  return answer;
}

Task<ApiResponse> BusServiceImpl::ReplayDead(const Inbox& inbox, std::string_view body) {
  auto o = ParseObject(body);
  if (!o) co_return FromError(o.error());
  auto ids = StringList(*o, "ids", false);
  if (!ids) co_return FromError(ids.error());
  std::vector<std::string>& list = *ids;
  const auto start = [this, &inbox, &list](auto done) {
    broker_->ReplayDeadLetters(inbox, std::move(list), std::move(done));
  };
  auto replayed = co_await AwaitCallback<Result<std::size_t>>(start);
  ArmTick();
  if (!replayed) co_return FromError(replayed.error());
  boost::json::object out;
  out["replayed"] = *replayed;
  co_return Json(200, out);
}

namespace {

// A rate as the stats show it: per second, to a thousandth.
double RateValue(double per_second) { return std::round(per_second * 1000.0) / 1000.0; }

// The inbox's rates; `publish` for a queue only (a topic's events are counted by the topic).
boost::json::object RatesJson(const InboxRates& r, bool with_publish) {
  boost::json::object o;
  if (with_publish) o["publish"] = RateValue(r.publish);
  o["deliver"] = RateValue(r.deliver);
  o["redeliver"] = RateValue(r.redeliver);
  o["ack"] = RateValue(r.ack);
  o["nack"] = RateValue(r.nack);
  o["dead_letter"] = RateValue(r.dead_letter);
  return o;
}

boost::json::object InboxJson(const InboxStats& s, bool queue) {
  boost::json::object o;
  o["depth"] = s.ready + s.backlog;
  o["ready"] = s.ready;
  o["backlog"] = s.backlog;
  o["in_flight"] = s.in_flight;
  o["delayed"] = s.delayed;
  o["blocked"] = s.blocked;
  o["dead_letters"] = s.dead_letters;
  boost::json::object c;
  c["published"] = s.published;
  c["delivered"] = s.delivered;
  c["redelivered"] = s.redelivered;
  c["acked"] = s.acked;
  c["nacked"] = s.nacked;
  c["lease_expired"] = s.lease_expired;
  c["dead_lettered"] = s.dead_lettered;
  c["replayed"] = s.replayed;
  c["duplicates"] = s.duplicates;
  c["checkpoints"] = s.checkpoints;
  o["counts"] = std::move(c);
  o["rates"] = RatesJson(s.rates, queue);
  return o;
}

// A backend's storage counters (the embedded log: messages_log, state_log), as it names them.
void AddStorageJson(const std::vector<StorageStats>& storage, boost::json::object& o) {
  for (const StorageStats& section : storage) {
    boost::json::object counters;
    for (const auto& [name, value] : section.counters) counters[name] = value;
    o[section.name] = std::move(counters);
  }
}

std::string DurationText(Duration d) { return FormatDuration(d); }

// A subscription's entry: its inbox fields, state log and the options it runs with.
boost::json::object SubscriptionJson(const SubscriptionStats& s,
                                     const SubscriptionOptions& options) {
  boost::json::object o = InboxJson(s.inbox, /*queue=*/false);
  AddStorageJson(s.storage, o);
  boost::json::object filter;  // only what it matches on; {} matches every event
  if (!options.filter.type.empty()) filter["type"] = options.filter.type;
  if (!options.filter.source.empty()) filter["source"] = options.filter.source;
  if (!options.filter.subject.empty()) filter["subject"] = options.filter.subject;
  o["filter"] = std::move(filter);
  o["lease"] = DurationText(options.delivery.lease);
  o["max_deliveries"] = options.delivery.max_deliveries;
  boost::json::object backoff;
  backoff["initial"] = DurationText(options.delivery.backoff.initial);
  backoff["max"] = DurationText(options.delivery.backoff.max);
  backoff["multiplier"] = options.delivery.backoff.multiplier;
  o["backoff"] = std::move(backoff);
  if (options.push) {
    boost::json::object push;
    push["service"] = options.push->service;
    push["path"] = options.push->path;
    push["timeout"] = DurationText(options.push->timeout);
    push["concurrency"] = options.push->concurrency;
    o["push"] = std::move(push);
  } else {
    o["push"] = nullptr;
  }
  return o;
}

}  // namespace

ApiResponse BusServiceImpl::QueueStatsJson(const std::string& queue) {
  auto s = broker_->GetQueueStats(queue);
  if (!s) return FromError(s.error());
  boost::json::object o = InboxJson(s->inbox, /*queue=*/true);
  o["name"] = queue;
  AddStorageJson(s->storage, o);
  return Json(200, o);
}

ApiResponse BusServiceImpl::TopicStatsJson(const std::string& topic) {
  auto s = broker_->GetTopicStats(topic);
  if (!s) return FromError(s.error());
  boost::json::object o;
  o["name"] = topic;
  o["published"] = s->published;
  o["duplicates"] = s->duplicates;
  boost::json::object rates;
  rates["publish"] = RateValue(s->publish_rate);
  o["rates"] = std::move(rates);
  AddStorageJson(s->storage, o);
  boost::json::object subs;
  for (const auto& sub : s->subscriptions) {
    auto options = broker_->GetSubscriptionOptions(topic, sub.name);
    if (!options) return FromError(options.error());
    subs[sub.name] = SubscriptionJson(sub, *options);
  }
  o["subscriptions"] = std::move(subs);
  return Json(200, o);
}

ApiResponse BusServiceImpl::SubscriptionStatsJson(const std::string& topic,
                                                  const std::string& name) {
  auto s = broker_->GetSubscriptionStats(topic, name);
  if (!s) return FromError(s.error());
  auto options = broker_->GetSubscriptionOptions(topic, name);
  if (!options) return FromError(options.error());
  boost::json::object o;
  o["topic"] = topic;
  o["name"] = name;
  for (auto& field : SubscriptionJson(*s, *options)) o[field.key()] = std::move(field.value());
  return Json(200, o);
}

Task<ApiResponse> BusServiceImpl::PutSubscription(const std::string& topic, const std::string& name,
                                                  std::string_view body) {
  // A PUT on an existing subscription changes only what its body gives; the rest, e.g. a
  // backoff from the config, stays as it runs now. A new subscription starts from the defaults.
  SubscriptionOptions current;
  if (auto existing = broker_->GetSubscriptionOptions(topic, name)) current = *existing;
  auto options = ApplySubscriptionPut(body, std::move(current), config_->services);
  if (!options) co_return FromError(options.error());
  if (auto r = broker_->CreateSubscription(topic, name, *options); !r)
    co_return FromError(r.error());
  // The options are in force from here, as the broker's are: a changed push replaces the
  // running one, none stops it.
  WatchInbox(Inbox::Subscription(topic, name));
  SetPush(Inbox::Subscription(topic, name), options->push);
  // Answered once what it wrote is stored (fsynced in batch mode): a 200 survives a power cut.
  const auto start = [this, &topic, &name](auto done) {
    broker_->WhenSubscriptionStored(topic, name, std::move(done));
  };
  auto stored = co_await AwaitCallback<Result<void>>(start);
  if (!stored) co_return FromError(stored.error());
  boost::json::object out;
  out["topic"] = topic;
  out["subscription"] = name;
  co_return Json(200, out);
}

Task<ApiResponse> BusServiceImpl::DeleteSubscription(const std::string& topic,
                                                     const std::string& name) {
  // One from the config would be declared again at the next start, with a fresh state.
  if (auto t = config_->bus->topics.find(topic);
      t != config_->bus->topics.end() && t->second.subscriptions.contains(name)) {
    co_return ErrorReply(409, "conflict",
                         fmt::format("subscription {}/{} is declared in the config, which would "
                                     "declare it again at the next start: take it out of the "
                                     "config and restart, then delete it",
                                     topic, name));
  }
  const std::string key = Inbox::Subscription(topic, name).ToString();
  // Its push ends now: a loop left running could find a subscription PUT under the same name
  // after the delete and push to it with the old settings.
  (void)StopPush(key);
  const auto start = [this, &topic, &name, &key](auto done) {
    broker_->DeleteSubscription(topic, name, std::move(done));
    // Long-polls on it wake up now and find it gone (404).
    NotifyInbox(key);
  };
  auto deleted = co_await AwaitCallback<Result<void>>(start);
  if (!deleted) {
    // A delete that failed before its commit point leaves the subscription open: serve its
    // long-polls and its push again.
    if (auto options = broker_->GetSubscriptionOptions(topic, name)) {
      WatchInbox(Inbox::Subscription(topic, name));
      SetPush(Inbox::Subscription(topic, name), options->push);
    }
    co_return FromError(deleted.error());
  }
  // The registry keeps a series once made: zero the gauges rather than leave its last values.
  metrics_.depth->Get(key).Set(slot_, 0);
  metrics_.in_flight->Get(key).Set(slot_, 0);
  metrics_.dead_letters->Get(key).Set(slot_, 0);
  metrics_.redeliveries->Get(key).Set(slot_, 0);
  co_return ApiResponse{204, ""};
}

ApiResponse BusServiceImpl::ReplaySubscription(const std::string& topic, const std::string& name,
                                               std::string_view body) {
  auto o = ParseObject(body);
  if (!o) return FromError(o.error());
  Result<void> r = Ok();
  if (auto it = o->find("from_sequence"); it != o->end()) {
    if (!it->value().is_int64() || it->value().as_int64() < 0) {
      return ErrorReply(400, "bad_request", "'from_sequence' must be a non-negative integer");
    }
    r = broker_->ReplaySubscription(topic, name,
                                    static_cast<std::uint64_t>(it->value().as_int64()));
  } else if (auto t = o->find("from_time"); t != o->end()) {
    if (!t->value().is_string())
      return ErrorReply(400, "bad_request", "'from_time' must be an RFC 3339 string");
    auto time = ParseRfc3339(t->value().as_string());
    if (!time) return FromError(time.error());
    r = broker_->ReplaySubscriptionFrom(topic, name, *time);
  } else {
    return ErrorReply(400, "bad_request", "give 'from_sequence' or 'from_time'");
  }
  if (!r) return FromError(r.error());
  NotifyInbox(topic + "/" + name);
  boost::json::object out;
  out["replayed"] = true;
  return Json(200, out);
}

}  // namespace ferry::bus
