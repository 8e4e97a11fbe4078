// The resilience client's lazy hedging, end to end over loopback sockets against small upstreams
// in this file that answer after a set delay (or never) and note when Ferry closes a connection
// they have not answered on: a first try that answers in time starts no hedge; a slow one gets
// a second try to the other endpoint; whichever good answer comes first wins and the other try
// is aborted, its connection closed; the budget can refuse a hedge; a POST is never hedged.
#include "resilience/client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "observability/metric_series.hpp"
#include "runtime/acceptor.hpp"
#include "runtime/deadline.hpp"
#include "upstream/resolver.hpp"

namespace ferry::resilience {
namespace {

using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

// Answers each request with 200 and its own name as the body, after `delay` (hours: never),
// keep-alive. Counts requests, and connections closed by the client before their answer.
class DelayedUpstream {
 public:
  DelayedUpstream(asio::io_context& io, std::string name, std::chrono::milliseconds delay)
      : io_(io), name_(std::move(name)), delay_(delay) {
    auto acceptor = runtime::Acceptor::Open(io, config::Address{"127.0.0.1", 0}, false, 64);
    EXPECT_TRUE(acceptor) << (acceptor ? "" : acceptor.error().message());
    acceptor_ = std::move(*acceptor);
    asio::co_spawn(io, AcceptLoop(this), asio::detached);
  }
  ~DelayedUpstream() { acceptor_->Close(); }
  config::Address address() const { return {"127.0.0.1", acceptor_->local_port()}; }
  int requests() const { return requests_; }
  int closed_unanswered() const { return closed_unanswered_; }

 private:
  static Task<void> AcceptLoop(DelayedUpstream* self) {
    for (;;) {
      auto stream = co_await self->acceptor_->Accept();
      if (!stream) co_return;
      asio::co_spawn(self->io_, Serve(self, std::move(*stream)), asio::detached);
    }
  }
  static Task<void> Serve(DelayedUpstream* self, std::unique_ptr<runtime::Stream> stream) {
    runtime::Stream& s = *stream;
    std::string in;
    char buf[4096];
    for (;;) {
      while (in.find("\r\n\r\n") == std::string::npos) {
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
        if (ec) co_return;
        in.append(buf, n);
      }
      in.erase(0, in.find("\r\n\r\n") + 4);  // (GETs and empty bodies only)
      ++self->requests_;
      // Wait out the delay, reading meanwhile: an EOF before it means the client gave up.
      bool gone = false;
      if (self->delay_.count() > 0) {
        runtime::Deadline<runtime::Stream> delay(self->io_, s);
        delay.Arm(self->delay_);
        auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
        gone = !delay.expired();
        (void)n;
        (void)ec;
      }
      if (gone) {
        ++self->closed_unanswered_;
        co_return;
      }
      const std::string reply =
          "HTTP/1.1 200 OK\r\ncontent-length: " + std::to_string(self->name_.size()) + "\r\n\r\n" +
          self->name_;
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(reply), kNoThrow);
      if (ec) co_return;
    }
  }

  asio::io_context& io_;
  std::string name_;
  std::chrono::milliseconds delay_;
  std::unique_ptr<runtime::Acceptor> acceptor_;
  int requests_ = 0;
  int closed_unanswered_ = 0;
};

struct Got {
  bool done = false;
  Result<void> result = Ok();
  int status = 0;
  std::string body;
  SendReport report;
  std::chrono::nanoseconds took{};
};

class HedgeTest : public ::testing::Test {
 protected:
  HedgeTest() : tries_(1), budget_exhausted_(1), hedges_(1) {
    metrics_.tries = &tries_;
    metrics_.budget_exhausted = &budget_exhausted_;
    metrics_.hedges = &hedges_;
    metrics_.service = "svc";
    policy_.retry.attempts = 1;  // the hedge alone
    policy_.hedge = config::HedgePolicy{};
    policy_.hedge->after = 50ms;
  }

  void Use(const std::vector<config::Address>& addresses) {
    upstream::ClusterOptions options;
    options.name = "svc";
    options.addresses = addresses;
    cluster_ = upstream::Cluster::Create(io_, options, std::make_shared<upstream::StaticResolver>(),
                                         resolve_pool_.get_executor());
    cluster_->ResolveNow();
  }

  static Task<void> SendOne(HedgeTest* self, RequestFacts facts, Got* got) {
    Client client(*self->cluster_, self->state_, self->policy_, SystemClock(), self->random_,
                  self->notices_, self->metrics_, 0);
    upstream::Request request;
    request.method = facts.idempotent ? "GET" : "POST";
    upstream::Response response;
    const auto started = SteadyClock::now();
    got->result =
        co_await client.Send(request, facts, SteadyClock::now() + 5s, response, got->report);
    got->took = SteadyClock::now() - started;
    if (got->result) {
      got->status = response.status;
      auto body = co_await response.body.ReadAll(1024);
      if (body) got->body = *body;
    }
    got->done = true;
  }

  Got Send(bool idempotent = true) {
    RequestFacts facts;
    facts.idempotent = idempotent;
    Got got;
    asio::co_spawn(io_, SendOne(this, facts, &got), asio::detached);
    RunUntil([&] { return got.done; });
    return got;
  }

  void RunUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    const auto until = SteadyClock::now() + limit;
    while (!done() && SteadyClock::now() < until) {
      io_.restart();
      io_.run_for(5ms);
    }
    ASSERT_TRUE(done()) << "timed out";
  }

  asio::io_context io_;
  asio::thread_pool resolve_pool_{1};
  std::shared_ptr<upstream::Cluster> cluster_;
  ServiceState state_;
  config::Policy policy_;
  upstream::Xoshiro256 random_{7};
  runtime::NoticeBoard notices_{io_};
  observability::Counter tries_, budget_exhausted_, hedges_;
  ClientMetrics metrics_;
};

TEST_F(HedgeTest, AFirstTryThatAnswersInTimeStartsNoHedge) {
  DelayedUpstream a(io_, "a", 0ms), b(io_, "b", 0ms);
  Use({a.address(), b.address()});
  for (int i = 0; i < 4; ++i) {
    const Got got = Send();
    ASSERT_TRUE(got.result) << got.result.error().message();
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.report.tries, 1u);
  }
  EXPECT_EQ(hedges_.Value(), 0u);
  EXPECT_EQ(tries_.Value(), 4u);
  EXPECT_EQ(a.requests() + b.requests(), 4);
}

TEST_F(HedgeTest, ASlowFirstTryIsHedgedAndTheLoserAbortedWhicheverTryWins) {
  // Round robin puts one request's first try on `medium` (it wins: the hedge to `never` is
  // aborted) and the other's on `never` (the hedge to `medium` wins: the first try is aborted).
  DelayedUpstream medium(io_, "medium", 200ms), never(io_, "never", std::chrono::hours(1));
  Use({medium.address(), never.address()});
  for (int i = 0; i < 2; ++i) {
    const Got got = Send();
    ASSERT_TRUE(got.result) << got.result.error().message();
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body, "medium");
    EXPECT_EQ(got.report.tries, 2u);
    EXPECT_LT(got.took, 1s);
  }
  EXPECT_EQ(hedges_.Value(), 2u);
  EXPECT_EQ(tries_.Value(), 4u);
  EXPECT_EQ(medium.requests(), 2);
  EXPECT_EQ(never.requests(), 2);
  // Both tries that went to `never` lost: their connections were closed, not left waiting.
  RunUntil([&] { return never.closed_unanswered() == 2; }, 2s);
  EXPECT_EQ(medium.closed_unanswered(), 0);
}

TEST_F(HedgeTest, MaxExtraStartsOneMoreTryEveryAfterAndTheLosersAreAborted) {
  // Every endpoint answers after 600 ms: the first try (started first) wins; by then one extra
  // started at 50 ms and another at 100 ms, both aborted when the first answered.
  policy_.hedge->max_extra = 2;
  DelayedUpstream a(io_, "a", 600ms), b(io_, "b", 600ms), c(io_, "c", 600ms);
  Use({a.address(), b.address(), c.address()});
  const Got got = Send();
  ASSERT_TRUE(got.result) << got.result.error().message();
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.report.tries, 3u);
  EXPECT_LT(got.took, 3s);
  EXPECT_EQ(hedges_.Value(), 2u);
  EXPECT_EQ(a.requests() + b.requests() + c.requests(), 3);
  RunUntil(
      [&] { return a.closed_unanswered() + b.closed_unanswered() + c.closed_unanswered() == 2; },
      2s);
}

TEST_F(HedgeTest, TheRetryBudgetCanRefuseTheHedge) {
  policy_.retry.budget.ratio = 0;
  policy_.retry.budget.min_per_second = 0;
  DelayedUpstream a(io_, "a", 200ms), b(io_, "b", 200ms);
  Use({a.address(), b.address()});
  const Got got = Send();
  ASSERT_TRUE(got.result) << got.result.error().message();
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.report.tries, 1u);
  EXPECT_TRUE(got.report.budget_exhausted);
  EXPECT_GE(got.took, 200ms);  // the first try was waited for
  EXPECT_EQ(hedges_.Value(), 0u);
  EXPECT_EQ(budget_exhausted_.Value(), 1u);
  EXPECT_EQ(a.requests() + b.requests(), 1);
}

TEST_F(HedgeTest, APostIsNeverHedged) {
  DelayedUpstream a(io_, "a", 200ms), b(io_, "b", 200ms);
  Use({a.address(), b.address()});
  const Got got = Send(/*idempotent=*/false);
  ASSERT_TRUE(got.result) << got.result.error().message();
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.report.tries, 1u);
  EXPECT_GE(got.took, 200ms);
  EXPECT_EQ(hedges_.Value(), 0u);
  EXPECT_EQ(a.requests() + b.requests(), 1);
}

TEST_F(HedgeTest, AHedgeWaitsOutASlowConnectToo) {
  // The first try's endpoint accepts nothing in time (a listener whose backlog is full would
  // do; here an address that is never answered stands for it): the hedge comes during the
  // connect, from the connect's own deadline timer.
  DelayedUpstream fast(io_, "fast", 0ms);
  // A black hole on loopback: a listening socket with a backlog of 0 that never accepts, its
  // queue filled by one connection made here.
  tcp::acceptor hole(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  hole.listen(0);
  const std::uint16_t hole_port = hole.local_endpoint().port();
  std::vector<std::unique_ptr<tcp::socket>> fillers;
  for (int i = 0; i < 4; ++i) {
    fillers.push_back(std::make_unique<tcp::socket>(io_));
    fillers.back()->async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), hole_port),
                                  [](const error_code&) {});
  }
  io_.run_for(50ms);  // (the queue fills; the later connects hang)
  Use({config::Address{"127.0.0.1", hole_port}, fast.address()});
  for (int i = 0; i < 2; ++i) {
    const Got got = Send();
    ASSERT_TRUE(got.result) << got.result.error().message();
    EXPECT_EQ(got.body, "fast");
    EXPECT_LT(got.took, 1s);
  }
  EXPECT_EQ(hedges_.Value(), 1u);  // one of the two first tries went to the black hole
}

}  // namespace
}  // namespace ferry::resilience
