#include "idempotency/idempotency_filter.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <iterator>
#include <random>

#include "http/headers.hpp"
#include "idempotency/node_store.hpp"
#include "observability/access_log_entry.hpp"

namespace ferry::idempotency {
namespace {

using proxy::FilterContext;
using proxy::Verdict;

// Keys longer than this are refused (Stripe's limit; the draft sets none).
constexpr std::size_t kMaxKey = 255;
// A marker's lease outlasts the route's timeout by this much (the store's own writes, a
// response still streaming when the timeout fires).
constexpr Duration kLeaseMargin = std::chrono::seconds(5);

std::int64_t UnixMs(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock.wall().time_since_epoch())
      .count();
}

// (Null when the node registered no metrics: unit tests that build snapshots by hand.)
void Count(observability::Counter* counter, std::size_t slot) {
  if (counter != nullptr) counter->Add(slot);
}

std::uint64_t NewToken() {
  thread_local std::mt19937_64 random(std::random_device{}());
  std::uint64_t token = 0;
  while (token == 0) token = random();
  return token;
}

// The caller's identity, when the exchange authenticated one (the filters before this one: the
// mesh peer's SPIFFE ID, the API key's name, the JWT's issuer and subject): it scopes keys, so
// two callers never share a key. Each part is tagged and length-prefixed, so no value can pass
// for another. Never the source address, which changes behind NATs and load balancers.
std::string CallerScope(const FilterContext& context) {
  const proxy::CallerIdentity& caller = context.caller;
  std::string scope;
  const auto add = [&scope](std::string_view tag, std::string_view value) {
    fmt::format_to(std::back_inserter(scope), "{}{}:{}", tag, value.size(), value);
  };
  if (!caller.peer.empty()) add("peer", caller.peer);
  if (!caller.api_key.empty()) add("key", caller.api_key);
  if (caller.jwt) {
    std::string_view issuer, subject;
    for (const auto& [name, value] : caller.claims) {
      if (name == "iss") issuer = value;
      if (name == "sub") subject = value;
    }
    add("iss", issuer);
    add("sub", subject);
  }
  return scope;
}

// The store's key: route, caller and the client's key, each with its length (no separator
// can be forged by a key).
std::string ScopedKey(std::string_view route, std::string_view caller, std::string_view key) {
  return fmt::format("{}:{}|{}:{}|{}", route.size(), route, caller.size(), caller, key);
}

// The client's key: the header's value, unquoted when it is a Structured Field string (the
// draft's form, `"8e03978e"`) or as it is (Stripe's form). Empty: none or invalid.
std::string_view ClientKey(std::string_view value) {
  if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
    value = value.substr(1, value.size() - 2);
  }
  return value;
}

// Ferry's JSON error shape (proxy/local_reply.hpp), made here: this area does not link the
// proxy's code, only its filter headers.
void JsonError(FilterContext& context, int status, std::string_view code,
               std::string_view message) {
  proxy::LocalReply& reply = context.Answer(status, code);
  reply.headers.Add("content-type", "application/json");
  fmt::format_to(std::back_inserter(reply.body),
                 R"({{"error":{{"code":"{}","status":{},"message":")", code, status);
  observability::AppendJsonStringContent(message, reply.body);
  reply.body.append(R"("},"request_id":")");
  observability::AppendJsonStringContent(context.request_id, reply.body);
  reply.body.append("\"}\n");
}

// Follows the first request with a key to its end: stores its response, or removes its marker
// when there is none to store (Ferry answered itself, or the response is over the cap).
class Recorder final : public proxy::ResponseObserver {
 public:
  Recorder(std::shared_ptr<AsyncStore> store, std::string key, Record record,
           std::uint64_t max_bytes, Duration ttl, const Clock& clock)
      : store_(std::move(store)),
        key_(std::move(key)),
        record_(std::move(record)),
        max_bytes_(max_bytes),
        ttl_(ttl),
        clock_(clock) {}

  void OnHead(int status, const http::Headers& headers) override {
    record_.response.status = status;
    headers.ForEach([this](const http::Headers::Field& f) {
      size_ += f.name.size() + f.value.size();
      record_.response.headers.emplace_back(f.name, f.value);
    });
  }
  void OnBody(std::string_view piece) override {
    size_ += piece.size();
    if (size_ <= max_bytes_) record_.response.body.append(piece);
  }
  Task<void> OnComplete() override {
    if (size_ > max_bytes_) {
      co_await Drop("the response is over max_response_bytes");
      co_return;
    }
    record_.state = Record::State::kDone;
    record_.expires_at_ms =
        UnixMs(clock_) + std::chrono::duration_cast<std::chrono::milliseconds>(ttl_).count();
    auto stored = co_await store_->Complete(key_, record_);
    if (!stored) {
      spdlog::warn("idempotency: a response was not stored ({}); repeats of its key get 409",
                   stored.error().message());
    }
  }
  Task<void> OnLocalReply(int) override { co_await Drop("Ferry answered itself"); }

 private:
  Task<void> Drop(std::string_view why) {
    auto dropped = co_await store_->Abandon(key_, record_.token);
    if (!dropped) {
      spdlog::warn(
          "idempotency: a marker was not removed after {} ({}); repeats of its key get "
          "409",
          why, dropped.error().message());
    }
  }

  std::shared_ptr<AsyncStore> store_;
  std::string key_;
  Record record_;  // the marker, then the finished record
  std::uint64_t max_bytes_;
  Duration ttl_;
  const Clock& clock_;
  std::uint64_t size_ = 0;  // of the response's headers and body so far
};

}  // namespace

IdempotencyFilter::IdempotencyFilter(const config::Route& route, std::shared_ptr<AsyncStore> store,
                                     FilterSeries series)
    : route_name_(route.name),
      settings_(*route.idempotency),
      lease_(route.timeout.count() > 0 ? std::min(route.timeout + kLeaseMargin, settings_.ttl)
                                       : settings_.ttl),
      store_(std::move(store)),
      series_(series) {}

Verdict IdempotencyFilter::OnRequest(FilterContext& context) const {
  // Safe methods change nothing: a key on them is ignored (the draft's scope: POST, PATCH...).
  const std::string_view method = context.request.method;
  if (method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "TRACE") {
    return Verdict::kContinue;
  }
  if (!context.request.headers.Has(settings_.header)) return Verdict::kContinue;
  return Verdict::kWait;
}

Task<Verdict> IdempotencyFilter::Wait(FilterContext& context) const {
  const std::string_view key =
      ClientKey(context.request.headers.Get(settings_.header).value_or(""));
  if (key.empty() || key.size() > kMaxKey) {
    JsonError(context, 400, "idempotency_key_invalid",
              fmt::format("the {} header must hold 1 to {} characters", settings_.header, kMaxKey));
    co_return Verdict::kReply;
  }
  if (!store_) {
    JsonError(context, 503, "idempotency_store_unavailable", "no idempotency store is open");
    co_return Verdict::kReply;
  }
  const std::string scoped = ScopedKey(route_name_, CallerScope(context), key);
  const std::int64_t now_ms = UnixMs(context.clock);
  Record marker;
  marker.fingerprint = Fingerprint(context.request.method, context.request.target, context.body);
  marker.token = NewToken();
  marker.lease_until_ms =
      now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(lease_).count();
  marker.expires_at_ms =
      now_ms + std::chrono::duration_cast<std::chrono::milliseconds>(settings_.ttl).count();
  auto begun = co_await store_->Begin(scoped, marker, now_ms);
  if (!begun) {
    spdlog::error("idempotency: {}", begun.error().message());
    JsonError(context, 503, "idempotency_store_unavailable",
              "the idempotency store cannot be reached; the request was not forwarded");
    co_return Verdict::kReply;
  }
  store_->MaybePurge(now_ms);
  switch (begun->outcome) {
    case Outcome::kStarted:
      context.observers.push_back(std::make_unique<Recorder>(store_, scoped, std::move(marker),
                                                             settings_.max_response_bytes,
                                                             settings_.ttl, context.clock));
      co_return Verdict::kContinue;
    case Outcome::kReplay: {
      Count(series_.replays, context.slot);
      StoredResponse& stored = begun->response;
      proxy::LocalReply& reply = context.Answer(stored.status, "idempotency_replayed");
      for (const auto& [name, value] : stored.headers) reply.headers.Add(name, value);
      reply.headers.Set("idempotency-replayed", "true");
      reply.body = std::move(stored.body);
      co_return Verdict::kReply;
    }
    case Outcome::kInFlight:
      Count(series_.in_use, context.slot);
      JsonError(context, 409, "idempotency_key_in_use",
                "a request with this idempotency key is still being processed; retry later");
      context.reply.headers.Add("retry-after", "1");
      co_return Verdict::kReply;
    case Outcome::kMismatch:
      Count(series_.mismatch, context.slot);
      JsonError(context, Describe(ErrorCode::kUnprocessable).http_status,
                "idempotency_key_mismatch",
                "this idempotency key was used with a different request (method, target or body)");
      co_return Verdict::kReply;
    case Outcome::kOutcomeUnknown:
      Count(series_.outcome_unknown, context.slot);
      JsonError(context, 409, "idempotency_outcome_unknown",
                "the first request with this idempotency key was interrupted and its outcome is "
                "unknown; it is not run again: check its effect, then use a new key");
      co_return Verdict::kReply;
  }
  co_return Verdict::kContinue;  // (not reached)
}

std::unique_ptr<const proxy::Filter> MakeIdempotency(const config::Route& route,
                                                     const config::Config&) {
  if (!route.idempotency) return nullptr;
  NodeStore node = NodeStoreNow();
  if (!node.store) {
    spdlog::error(
        "route {}: idempotency is on but no idempotency store is open; requests "
        "with a key get 503",
        route.name);
  }
  FilterSeries series;
  if (node.replays != nullptr) {
    series.replays = &node.replays->Get(route.name);
    series.in_use = &node.conflicts->Get(route.name, "in_use");
    series.mismatch = &node.conflicts->Get(route.name, "mismatch");
    series.outcome_unknown = &node.conflicts->Get(route.name, "outcome_unknown");
  }
  return std::make_unique<IdempotencyFilter>(route, std::move(node.store), series);
}

}  // namespace ferry::idempotency
