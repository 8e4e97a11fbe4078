#include "resilience/retry_rules.hpp"

#include <gtest/gtest.h>

namespace ferry::resilience {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

config::Policy Standard() {
  config::Policy p;
  p.retry.attempts = 3;
  p.retry.on = {config::RetryCondition::kConnectFailure, config::RetryCondition::kReset,
                config::RetryCondition::kTryTimeout};
  p.retry.on_status = {502, 503, 504};
  return p;
}

TryFacts Status(int status) { return {Outcome::kResponse, status, std::nullopt}; }
TryFacts Failed(Outcome o) { return {o, 0, std::nullopt}; }

TEST(Idempotency, MethodsAndKey) {
  for (const char* m : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"}) {
    EXPECT_TRUE(IsIdempotent(m, false)) << m;
    EXPECT_FALSE(IsIdempotent(m, true)) << m;
  }
  for (const char* m : {"POST", "PATCH", "CONNECT", "get", "FOO"}) {
    EXPECT_FALSE(IsIdempotent(m, false)) << m;
  }
}

TEST(RetryRules, RetriesListedConditionsAndStatusesOnly) {
  const config::Policy p = Standard();
  const RequestFacts get;
  EXPECT_TRUE(DecideRetry(p, get, Status(503), 1, seconds(1), 0.5).retry());
  EXPECT_TRUE(DecideRetry(p, get, Failed(Outcome::kReset), 1, seconds(1), 0.5).retry());
  EXPECT_TRUE(DecideRetry(p, get, Failed(Outcome::kTryTimeout), 1, seconds(1), 0.5).retry());
  EXPECT_EQ(DecideRetry(p, get, Status(500), 1, seconds(1), 0.5).refusal, Refusal::kNotRetryable);
  EXPECT_EQ(DecideRetry(p, get, Status(200), 1, seconds(1), 0.5).refusal, Refusal::kNotRetryable);
  EXPECT_EQ(DecideRetry(p, get, Failed(Outcome::kDeadline), 1, seconds(1), 0.5).refusal,
            Refusal::kNotRetryable);
  EXPECT_EQ(DecideRetry(p, get, Failed(Outcome::kCancelled), 1, seconds(1), 0.5).refusal,
            Refusal::kNotRetryable);
}

TEST(RetryRules, AttemptsBoundTheTries) {
  const config::Policy p = Standard();
  EXPECT_TRUE(DecideRetry(p, {}, Status(503), 2, seconds(1), 0).retry());
  EXPECT_EQ(DecideRetry(p, {}, Status(503), 3, seconds(1), 0).refusal, Refusal::kAttempts);
}

TEST(RetryRules, NonIdempotentOnlyWhenNothingReachedTheUpstream) {
  const config::Policy p = Standard();
  const RequestFacts post{/*idempotent=*/false, /*key_honoured=*/false, /*replayable=*/true};
  EXPECT_TRUE(DecideRetry(p, post, Failed(Outcome::kConnectFailure), 1, seconds(1), 0).retry());
  EXPECT_EQ(DecideRetry(p, post, Failed(Outcome::kReset), 1, seconds(1), 0).refusal,
            Refusal::kUnsafe);
  EXPECT_EQ(DecideRetry(p, post, Status(503), 1, seconds(1), 0).refusal, Refusal::kUnsafe);
  EXPECT_EQ(DecideRetry(p, post, Failed(Outcome::kTryTimeout), 1, seconds(1), 0).refusal,
            Refusal::kUnsafe);
  const RequestFacts keyed{false, /*key_honoured=*/true, true};
  EXPECT_TRUE(DecideRetry(p, keyed, Status(503), 1, seconds(1), 0).retry());
  EXPECT_FALSE(MayResend(post));
  EXPECT_TRUE(MayResend(keyed));
}

TEST(RetryRules, AStreamedBodyIsNotSentAgain) {
  const RequestFacts streamed{true, false, /*replayable=*/false};
  EXPECT_EQ(DecideRetry(Standard(), streamed, Status(503), 1, seconds(1), 0).refusal,
            Refusal::kBody);
}

TEST(RetryRules, BackoffGrowsAndRetryAfterIsHonoured) {
  const config::Policy p = Standard();
  EXPECT_EQ(DecideRetry(p, {}, Status(502), 1, seconds(10), 1.0).wait, milliseconds(25));
  EXPECT_EQ(DecideRetry(p, {}, Status(502), 2, seconds(10), 1.0).wait, milliseconds(50));
  TryFacts busy = Status(503);
  busy.retry_after = seconds(2);
  EXPECT_EQ(DecideRetry(p, {}, busy, 1, seconds(10), 1.0).wait, seconds(2));
  // A Retry-After longer than what is left: no retry.
  EXPECT_EQ(DecideRetry(p, {}, busy, 1, seconds(1), 1.0).refusal, Refusal::kDeadline);
}

TEST(RetryRules, NoTryWithTooLittleTimeLeft) {
  const config::Policy p = Standard();
  EXPECT_EQ(DecideRetry(p, {}, Status(503), 1, milliseconds(4), 0).refusal, Refusal::kDeadline);
  EXPECT_EQ(DecideRetry(p, {}, Status(503), 1, milliseconds(20), 1.0).refusal,
            Refusal::kDeadline);  // 25ms of backoff do not fit
  EXPECT_TRUE(DecideRetry(p, {}, Status(503), 1, milliseconds(20), 0.2).retry());
}

TEST(Outcome, ClassifiesSendResults) {
  EXPECT_EQ(Classify(Ok(), false), Outcome::kResponse);
  EXPECT_EQ(Classify(Fail(ErrorCode::kConnectFailed, ""), false), Outcome::kConnectFailure);
  EXPECT_EQ(Classify(Fail(ErrorCode::kConnectionClosed, ""), false), Outcome::kReset);
  EXPECT_EQ(Classify(Fail(ErrorCode::kDeadlineExceeded, ""), true), Outcome::kTryTimeout);
  EXPECT_EQ(Classify(Fail(ErrorCode::kDeadlineExceeded, ""), false), Outcome::kDeadline);
  EXPECT_TRUE(IsFailure(Outcome::kResponse, 503));
  EXPECT_FALSE(IsFailure(Outcome::kResponse, 404));
  EXPECT_TRUE(IsFailure(Outcome::kTryTimeout, 0));
  EXPECT_FALSE(IsFailure(Outcome::kCancelled, 0));
}

}  // namespace
}  // namespace ferry::resilience
