#include "resilience/client.hpp"

#include <fmt/format.h>

#include <boost/asio/deferred.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/this_coro.hpp>
#include <charconv>

#include "resilience/backoff.hpp"

namespace ferry::resilience {
namespace {

double Unit(upstream::RandomSource& random) {
  return static_cast<double>(random.Next() >> 11) * 0x1.0p-53;  // [0, 1)
}

// The response of a try that is retried: small bodies are read so the connection can be
// reused; others are dropped with their connection.
constexpr std::uint64_t kDrainBytes = 16 * 1024;

}  // namespace

Task<Result<void>> Client::Send(upstream::Request& request, const RequestFacts& facts,
                                TimePoint deadline, upstream::Response& response,
                                SendReport& report) {
  request.may_resend = MayResend(facts);
  const bool hedging = policy_.hedge.has_value() && facts.idempotent && request.body == nullptr &&
                       policy_.hedge->after.count() > 0;
  state_.retry_budget.OnRequest(clock_.now());
  char deadline_ms[24];
  for (std::uint32_t tries = 1;; ++tries) {
    const TimePoint now = clock_.now();
    if (deadline != TimePoint::max()) {
      if (deadline - now < kMinTryTime) {
        co_return Fail(
            ErrorCode::kDeadlineExceeded,
            fmt::format("too little time left for a try to service {}", cluster_.name()));
      }
      // The time left goes to the next hop (it sees its own share of the deadline shrink by
      // the network's time; rounded down).
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      const auto [end, ec] = std::to_chars(deadline_ms, deadline_ms + sizeof(deadline_ms),
                                           static_cast<std::int64_t>(left.count()));
      request.sent_headers().Set(
          kDeadlineHeader,
          std::string_view(deadline_ms, static_cast<std::size_t>(end - deadline_ms)));
    }
    request.head_deadline = policy_.try_timeout.count() > 0 && deadline - now > policy_.try_timeout
                                ? now + policy_.try_timeout
                                : TimePoint::max();

    // Before each try: the breaker (fail fast, the upstream not contacted), then a slot of the
    // concurrency limit (waiting within the deadline).
    const Admission admission = state_.breaker.Allow();
    if (admission == Admission::kRejected) {
      report.retry_after = state_.breaker.OpenTimeLeft();
      co_return Fail(ErrorCode::kCircuitOpen,
                     fmt::format("the circuit breaker of service {} is open", cluster_.name()));
    }
    report.permit.Reset();  // the previous try's
    if (auto slot = state_.limiter.TryAcquire()) {
      report.permit = std::move(*slot);
    } else {
      auto waited = co_await state_.limiter.Acquire(deadline);
      if (!waited) {
        state_.breaker.Cancel(admission);
        report.overloaded = waited.error().code() == ErrorCode::kResourceExhausted;
        co_return tl::unexpected(waited.error());
      }
      report.permit = std::move(*waited);
    }

    Result<void> got = Ok();
    if (hedging) {
      got = co_await Hedged(request, deadline, response, report);
    } else {
      got = co_await cluster_.Send(request, deadline, response);
    }
    ++report.tries;
    metrics_.tries->Add(slot_);
    const bool try_timed_out = !got && got.error().code() == ErrorCode::kDeadlineExceeded &&
                               request.head_deadline != TimePoint::max() && clock_.now() < deadline;
    TryFacts t;
    t.outcome = Classify(got, try_timed_out);
    t.status = got ? response.status : 0;
    report.try_timed_out = try_timed_out;

    // After each try: its outcome to the breaker. A try that taught nothing about the service
    // (no endpoint, the request's own deadline, cancelled) gives a trial slot back instead.
    switch (t.outcome) {
      case Outcome::kNoEndpoint:
      case Outcome::kDeadline:
      case Outcome::kCancelled:
        state_.breaker.Cancel(admission);
        break;
      default:
        state_.breaker.Record(admission, IsFailure(t.outcome, t.status));
    }

    if (t.outcome == Outcome::kResponse && (t.status == 429 || t.status == 503)) {
      if (auto value = response.headers.Get("retry-after")) t.retry_after = ParseRetryAfter(*value);
    }
    RequestFacts now_facts = facts;
    if (got ? !RetryOn(policy_.retry, t) : false) co_return got;  // the common case: done
    now_facts.replayable = request.body == nullptr || request.body->Rewind();
    const TimePoint after = clock_.now();
    const Duration left = deadline == TimePoint::max()
                              ? Duration::max() / 2
                              : std::chrono::duration_cast<Duration>(deadline - after);
    const RetryDecision decision = DecideRetry(policy_, now_facts, t, tries, left, Unit(random_));
    if (!decision.retry()) {
      if (try_timed_out) {
        co_return Fail(ErrorCode::kDeadlineExceeded,
                       fmt::format("upstream {} sent no response head within try_timeout {}",
                                   cluster_.name(), FormatDuration(policy_.try_timeout)));
      }
      co_return got;
    }
    if (!state_.retry_budget.TryWithdraw(after, policy_.retry.budget)) {
      report.budget_exhausted = true;
      metrics_.budget_exhausted->Add(slot_);
      co_return got;
    }
    CountRetry(t);
    if (got) co_await Discard(response, deadline);
    report.permit.Reset();  // not held through the backoff
    request.avoid = request.endpoint.get();
    if (decision.wait.count() > 0) {
      asio::steady_timer timer(co_await asio::this_coro::executor);
      timer.expires_after(decision.wait);
      const auto [ec] = co_await timer.async_wait(kNoThrow);
      if (ec) co_return Fail(ErrorCode::kCancelled, "cancelled during a retry's backoff");
    }
  }
}

// The two tries of a hedge, on one event loop: which are still running, and whether the hedge
// started (a first try that fails before then ends the race: the retry loop goes on).
struct Client::Race {
  int running = 2;
  bool hedge_started = false;
  SendReport* report = nullptr;
};

namespace {

// Waits until the race's other try ends (it cancels this one), or the deadline.
Task<void> WaitForTheOther(Client::TimePoint deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  if (deadline == Client::TimePoint::max()) {
    timer.expires_after(std::chrono::hours(24));
  } else {
    timer.expires_at(deadline);
  }
  const auto [ec] = co_await timer.async_wait(kNoThrow);
  (void)ec;
}

}  // namespace

Task<Result<void>> Client::RaceTry(upstream::Request& request, const upstream::Request* primary,
                                   TimePoint deadline, upstream::Response& response, Race& race) {
  // A try of a race sees the cancellation when the other wins, as error codes (not thrown).
  co_await asio::this_coro::throw_if_cancelled(false);
  const bool is_hedge = primary != nullptr;
  if (is_hedge) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(policy_.hedge->after);
    const auto [ec] = co_await timer.async_wait(kNoThrow);
    if (ec) {  // the first try ended before the hedge was due
      --race.running;
      co_return Fail(ErrorCode::kCancelled, "hedge not needed");
    }
    if (!state_.retry_budget.TryWithdraw(clock_.now(), policy_.retry.budget)) {
      race.report->budget_exhausted = true;
      metrics_.budget_exhausted->Add(slot_);
      --race.running;
      co_await WaitForTheOther(deadline);
      co_return Fail(ErrorCode::kCancelled, "hedge refused by the retry budget");
    }
    race.hedge_started = true;
    request.avoid = primary->endpoint.get();
    metrics_.hedges->Add(slot_);
    metrics_.tries->Add(slot_);
    ++race.report->tries;
  }
  const Result<void> got = co_await cluster_.Send(request, deadline, response);
  TryFacts t;
  t.outcome = Classify(got, false);
  t.status = got ? response.status : 0;
  const bool good = got && !RetryOn(policy_.retry, t);
  --race.running;
  if (!good && race.running > 0 && race.hedge_started) {
    co_await WaitForTheOther(deadline);  // the other may still bring a good response
  }
  co_return got;
}

Task<Result<void>> Client::Hedged(upstream::Request& request, TimePoint deadline,
                                  upstream::Response& response, SendReport& report) {
  Race race;
  race.report = &report;
  upstream::Request hedge;
  hedge.head = request.head;
  hedge.method = request.method;
  hedge.target = request.target;
  hedge.headers = request.headers;
  hedge.hash_key = request.hash_key;
  hedge.may_resend = request.may_resend;
  hedge.head_deadline = request.head_deadline;
  upstream::Response hedge_response;
  const auto executor = co_await asio::this_coro::executor;
  auto [order, e1, first, e2, second] =
      co_await asio::experimental::make_parallel_group(
          asio::co_spawn(executor, RaceTry(request, nullptr, deadline, response, race),
                         asio::deferred),
          asio::co_spawn(executor, RaceTry(hedge, &request, deadline, hedge_response, race),
                         asio::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  if (e1 || e2) co_return Fail(ErrorCode::kInternal, "a hedged try threw");
  if (order[0] == 0) {
    response.endpoint = request.endpoint;  // (Send set it; the hedge's response is dropped)
    co_return first;
  }
  // The hedge won: its response and endpoint are the request's.
  response = std::move(hedge_response);
  request.endpoint = hedge.endpoint;
  co_return second;
}

void Client::CountRetry(const TryFacts& t) {
  if (metrics_.retries == nullptr) return;
  if (t.outcome == Outcome::kResponse) {
    char status[8];
    const auto [end, ec] = std::to_chars(status, status + sizeof(status), t.status);
    const std::string_view reason(status, static_cast<std::size_t>(end - status));
    metrics_.retries->Get(metrics_.service, reason).Add(slot_);
  } else {
    metrics_.retries->Get(metrics_.service, Name(t.outcome)).Add(slot_);
  }
}

Task<void> Client::Discard(upstream::Response& response, TimePoint) {
  const auto length = response.body.length();
  if (length && *length <= kDrainBytes) {
    const Result<void> drained = co_await response.body.Drain(kDrainBytes);
    (void)drained;  // a failed drain closed the connection: nothing else to do
  }
  response.body = upstream::BodyReader();  // (closes the connection if it was not read)
  response.status = 0;
  response.reason.clear();
  response.headers.Clear();
  response.endpoint.reset();
}

}  // namespace ferry::resilience
