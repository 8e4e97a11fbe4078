#include "resilience/client.hpp"

#include <fmt/format.h>

#include <boost/asio/this_coro.hpp>
#include <charconv>
#include <memory>

#include "resilience/backoff.hpp"
#include "runtime/io_watch.hpp"
#include "runtime/notice_board.hpp"
#include "runtime/task_group.hpp"

namespace ferry::resilience {
namespace {

double Unit(upstream::RandomSource& random) {
  return static_cast<double>(random.Next() >> 11) * 0x1.0p-53;  // [0, 1)
}

// The response of a try that is retried: small bodies are read so the connection can be
// reused; others are dropped with their connection.
constexpr std::uint64_t kDrainBytes = 16 * 1024;

}  // namespace

// An extra try of a hedge, run as a task of its own group (the first runs in place).
struct Client::HedgeTry {
  explicit HedgeTry(asio::any_io_executor executor) : tasks(std::move(executor)) {}
  // Only its Abort is used: another try's good answer ends this one.
  struct Watch final : runtime::IoWatch {
    void OnNotice() override {}
  };
  Watch watch;
  upstream::Request request;
  upstream::Response response;
  Result<void> result = Ok();
  std::uint32_t finished = 0;  // when its Send returned, in the hedge's order (0: still runs)
  runtime::TaskGroup tasks;
};

// The watch on a hedged request's first try: each notice (from the worker's NoticeBoard, every
// hedge.after while no try answered well) starts one extra try, up to hedge.max_extra.
struct Client::Hedge final : runtime::IoWatch {
  Hedge(Client& c, upstream::Request& r, TimePoint d, SendReport& rep)
      : client(c), first(r), deadline(d), report(rep) {}
  void OnNotice() override { client.StartHedge(*this); }
  // Ends every extra try still running but `keep` (null: all).
  void AbortExtras(const HedgeTry* keep) {
    for (auto& extra : extras) {
      if (extra.get() != keep && extra->finished == 0) extra->watch.Abort();
    }
  }

  Client& client;
  upstream::Request& first;
  TimePoint deadline;
  SendReport& report;
  std::vector<std::unique_ptr<HedgeTry>> extras;  // in the order they started
  HedgeTry* winner = nullptr;                     // the extra whose good answer ended the others
  std::uint32_t finished = 0;                     // Sends returned so far, the first try's included
  std::uint32_t first_finished = 0;  // the first try's place in that order (0: still runs)
  bool first_good = false;  // the first try's answer is the request's (or it was cancelled)
};

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
      // The first try in place, watched: only if it is still without a response head at
      // hedge.after does the watch's notice start a second try (StartHedge).
      Hedge hedge(*this, request, deadline, report);
      hedge.NoticeAt(std::chrono::steady_clock::now() + policy_.hedge->after);
      notices_.Post(hedge);
      request.watch = &hedge;
      got = co_await cluster_.Send(request, deadline, response);
      request.watch = nullptr;
      hedge.Withdraw();
      hedge.first_finished = ++hedge.finished;
      if (!hedge.extras.empty()) got = co_await FinishHedge(hedge, got, request, response);
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
    if (got && facts.grpc) {
      t.grpc_status = TrailersOnlyGrpcStatus(response.status, response.headers);
    }
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

bool Client::Good(const Result<void>& got, const upstream::Response& response) const {
  if (!got) return false;
  TryFacts t;
  t.outcome = Outcome::kResponse;
  t.status = response.status;
  return !RetryOn(policy_.retry, t);
}

void Client::StartHedge(Hedge& hedge) {
  if (hedge.first_finished != 0 || hedge.winner != nullptr ||
      hedge.extras.size() >= policy_.hedge->max_extra) {
    return;
  }
  if (!state_.retry_budget.TryWithdraw(clock_.now(), policy_.retry.budget)) {
    hedge.report.budget_exhausted = true;
    metrics_.budget_exhausted->Add(slot_);
    return;  // the tries running go on alone
  }
  auto extra = std::make_unique<HedgeTry>(cluster_.io().get_executor());
  const upstream::Request& first = hedge.first;
  upstream::Request& request = extra->request;
  request.head = first.head;  // (lent to every try: Send frames it once, before the first)
  request.method = first.method;
  request.target = first.target;
  request.headers = first.headers;
  request.hash_key = first.hash_key;
  request.may_resend = first.may_resend;
  request.head_deadline = first.head_deadline;
  // Away from the try started last (round robin moves on from the others anyway).
  request.avoid =
      hedge.extras.empty() ? first.endpoint.get() : hedge.extras.back()->request.endpoint.get();
  request.watch = &extra->watch;
  metrics_.hedges->Add(slot_);
  metrics_.tries->Add(slot_);
  ++hedge.report.tries;
  HedgeTry& started = *extra;
  hedge.extras.push_back(std::move(extra));
  started.tasks.Spawn(RunHedge(hedge, started));  // (may run at once, up to its first wait)
  if (hedge.extras.size() < policy_.hedge->max_extra) {
    hedge.NoticeAt(std::chrono::steady_clock::now() + policy_.hedge->after);
    notices_.Post(hedge);  // the next extra, if still no good answer by then
  }
}

Task<void> Client::RunHedge(Hedge& hedge, HedgeTry& extra) {
  extra.result = co_await cluster_.Send(extra.request, hedge.deadline, extra.response);
  extra.finished = ++hedge.finished;
  if (hedge.winner == nullptr && Good(extra.result, extra.response) &&
      !(hedge.first_finished != 0 && hedge.first_good)) {
    hedge.winner = &extra;
    if (hedge.first_finished == 0) hedge.Abort();  // kCancelled, its connection closed
    hedge.AbortExtras(&extra);
  }
}

Task<Result<void>> Client::FinishHedge(Hedge& hedge, const Result<void>& first,
                                       upstream::Request& request, upstream::Response& response) {
  if (hedge.winner == nullptr &&
      (Good(first, response) || (!first && first.error().code() == ErrorCode::kCancelled))) {
    hedge.first_good = true;
    hedge.AbortExtras(nullptr);  // the first answered well, or the request itself was cancelled
  }
  // The extras' frames refer to `hedge`: they must end first. An extra that answers well while
  // the others still run ends them (RunHedge).
  for (auto& extra : hedge.extras) co_await extra->tasks.Wait();
  HedgeTry* take = hedge.winner;
  if (take == nullptr && !hedge.first_good) {
    // Every try failed: the one that ended last, as the caller would have waited for it.
    for (auto& extra : hedge.extras) {
      if (extra->finished > hedge.first_finished &&
          (take == nullptr || extra->finished > take->finished)) {
        take = extra.get();
      }
    }
  }
  if (take == nullptr) co_return first;
  // That extra's answer is the request's; the first's response, if any, goes with its connection.
  response = std::move(take->response);
  request.endpoint = take->request.endpoint;
  co_return take->result;
}

void Client::CountRetry(const TryFacts& t) {
  if (metrics_.retries == nullptr) return;
  if (t.outcome == Outcome::kResponse && t.grpc_status > 0) {
    char status[16] = "grpc_";
    const auto [end, ec] = std::to_chars(status + 5, status + sizeof(status), t.grpc_status);
    const std::string_view reason(status, static_cast<std::size_t>(end - status));
    metrics_.retries->Get(metrics_.service, reason).Add(slot_);
  } else if (t.outcome == Outcome::kResponse) {
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
