#include "idempotency/idempotency_filter.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "idempotency/lmdb_store.hpp"

namespace ferry::idempotency {
namespace {

namespace fs = std::filesystem;
using proxy::FilterContext;
using proxy::Verdict;

// One request through the filter, as the exchange runs it: OnRequest, Wait when it asks, and
// then (for a forwarded request) the observer with the upstream's response or a local reply.
class IdempotencyFilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry-idem-filter-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto store = LmdbStore::Open(dir_.string());
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::make_shared<AsyncStore>(std::move(*store));
    route_.name = "pay";
    route_.idempotency = config::Idempotency{};
    filter_ = std::make_unique<IdempotencyFilter>(route_, store_, FilterSeries{});
  }
  void TearDown() override {
    filter_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  struct Exchange {
    http::RequestHead head;
    std::string body;
    proxy::LocalReply reply;
    std::vector<std::unique_ptr<proxy::ResponseObserver>> observers;
    proxy::CallerIdentity caller;
    Verdict verdict = Verdict::kContinue;
  };

  static Task<void> RunWait(const IdempotencyFilter* filter, FilterContext* context,
                            Verdict* verdict) {
    *verdict = co_await filter->Wait(*context);
  }
  static Task<void> Finish(proxy::ResponseObserver* observer, int local_status) {
    if (local_status == 0) {
      co_await observer->OnComplete();
    } else {
      co_await observer->OnLocalReply(local_status);
    }
  }
  template <typename T>
  void Run(Task<T> task) {
    bool done = false;
    asio::co_spawn(io_, std::move(task), [&](std::exception_ptr) { done = true; });
    io_.restart();
    while (!done) io_.run_one_for(std::chrono::seconds(5));
  }

  // Sends a request; `key` empty: none.
  std::unique_ptr<Exchange> Send(std::string_view key, std::string body = "{\"amount\":1}",
                                 std::string method = "POST") {
    auto e = std::make_unique<Exchange>();
    e->caller = caller_;
    e->head.method = std::move(method);
    e->head.target = "/pay";
    if (!key.empty()) e->head.headers.Add("Idempotency-Key", key);
    e->body = std::move(body);
    FilterContext context{e->head,  route_, "127.0.0.1", "rid",        e->body,
                          e->reply, clock_, 0,           e->observers, e->caller};
    e->verdict = filter_->OnRequest(context);
    if (e->verdict == Verdict::kWait) Run(RunWait(filter_.get(), &context, &e->verdict));
    return e;
  }
  // The upstream answers a forwarded exchange.
  void Respond(Exchange& e, int status, std::string_view body) {
    ASSERT_EQ(e.observers.size(), 1u);
    http::Headers headers;
    headers.Add("content-type", "text/plain");
    e.observers[0]->OnHead(status, headers);
    e.observers[0]->OnBody(body);
    Run(Finish(e.observers[0].get(), 0));
  }

  asio::io_context io_;
  FakeClock clock_;
  fs::path dir_;
  std::shared_ptr<AsyncStore> store_;
  config::Route route_;
  std::unique_ptr<IdempotencyFilter> filter_;
  proxy::CallerIdentity caller_;  // who the next Send comes from (set by the auth filters)
};

TEST_F(IdempotencyFilterTest, RequestsWithoutAKeyOrSafeOnesPassAtOnce) {
  EXPECT_EQ(Send("")->verdict, Verdict::kContinue);
  auto get = Send("k", "", "GET");
  EXPECT_EQ(get->verdict, Verdict::kContinue);
  EXPECT_TRUE(get->observers.empty());
}

TEST_F(IdempotencyFilterTest, FirstGoesOnRepeatsWaitThenReplay) {
  auto first = Send("k1");
  ASSERT_EQ(first->verdict, Verdict::kContinue);
  auto during = Send("k1");
  EXPECT_EQ(during->verdict, Verdict::kReply);
  EXPECT_EQ(during->reply.status, 409);
  EXPECT_EQ(during->reply.code, "idempotency_key_in_use");
  EXPECT_EQ(during->reply.headers.Get("retry-after"), "1");

  Respond(*first, 201, "charged");
  auto after = Send("k1");
  ASSERT_EQ(after->verdict, Verdict::kReply);
  EXPECT_EQ(after->reply.status, 201);
  EXPECT_EQ(after->reply.body, "charged");
  EXPECT_EQ(after->reply.headers.Get("content-type"), "text/plain");
  EXPECT_EQ(after->reply.headers.Get("idempotency-replayed"), "true");
  EXPECT_EQ(Send("\"k1\"")->reply.status, 201);  // the draft's quoted form: the same key
}

TEST_F(IdempotencyFilterTest, KeysAreScopedByTheAuthenticatedCaller) {
  caller_.jwt = true;
  caller_.claims = {{"iss", "https://idp"}, {"sub", "alice"}};
  auto alice = Send("shared");
  ASSERT_EQ(alice->verdict, Verdict::kContinue);
  Respond(*alice, 201, "alice charged");

  caller_.claims = {{"iss", "https://idp"}, {"sub", "bob"}};  // same key, another user: runs
  auto bob = Send("shared");
  ASSERT_EQ(bob->verdict, Verdict::kContinue);
  Respond(*bob, 201, "bob charged");

  caller_ = {};
  caller_.peer = "spiffe://mesh.local/service/orders";  // a mesh peer: its own scope too
  auto peer = Send("shared");
  ASSERT_EQ(peer->verdict, Verdict::kContinue);
  Respond(*peer, 201, "orders charged");

  caller_ = {};  // anonymous: yet another scope
  EXPECT_EQ(Send("shared")->verdict, Verdict::kContinue);

  caller_.jwt = true;
  caller_.claims = {{"iss", "https://idp"}, {"sub", "alice"}};  // alice again: her replay
  auto again = Send("shared");
  ASSERT_EQ(again->verdict, Verdict::kReply);
  EXPECT_EQ(again->reply.body, "alice charged");
}

TEST_F(IdempotencyFilterTest, OtherBodyIs422) {
  auto first = Send("k2");
  Respond(*first, 200, "ok");
  auto other = Send("k2", "{\"amount\":2}");
  EXPECT_EQ(other->reply.status, 422);
  EXPECT_EQ(other->reply.code, "idempotency_key_mismatch");
  EXPECT_NE(other->reply.body.find("\"request_id\":\"rid\""), std::string::npos);
}

TEST_F(IdempotencyFilterTest, LocalReplyFreesTheKey) {
  auto first = Send("k3");
  ASSERT_EQ(first->observers.size(), 1u);
  Run(Finish(first->observers[0].get(), 502));
  EXPECT_EQ(Send("k3")->verdict, Verdict::kContinue);
}

TEST_F(IdempotencyFilterTest, ResponseOverTheCapFreesTheKey) {
  route_.idempotency->max_response_bytes = 16;
  filter_ = std::make_unique<IdempotencyFilter>(route_, store_, FilterSeries{});
  auto first = Send("k4");
  Respond(*first, 200, std::string(100, 'x'));
  EXPECT_EQ(Send("k4")->verdict, Verdict::kContinue);
}

TEST_F(IdempotencyFilterTest, AfterTheLeaseTheOutcomeIsUnknown) {
  route_.timeout = std::chrono::seconds(2);  // the lease: 2 s + 5 s
  filter_ = std::make_unique<IdempotencyFilter>(route_, store_, FilterSeries{});
  auto first = Send("k5");
  ASSERT_EQ(first->verdict, Verdict::kContinue);
  first->observers.clear();  // the exchange ended with neither a response nor a local reply
  clock_.Advance(std::chrono::seconds(6));
  EXPECT_EQ(Send("k5")->reply.code, "idempotency_key_in_use");
  clock_.Advance(std::chrono::seconds(2));
  auto late = Send("k5");
  EXPECT_EQ(late->reply.status, 409);
  EXPECT_EQ(late->reply.code, "idempotency_outcome_unknown");
  EXPECT_FALSE(late->reply.headers.Has("retry-after"));
  clock_.Advance(std::chrono::hours(24));  // the record's ttl
  EXPECT_EQ(Send("k5")->verdict, Verdict::kContinue);
}

TEST_F(IdempotencyFilterTest, InvalidKeysAre400) {
  EXPECT_EQ(Send(std::string(256, 'k'))->reply.code, "idempotency_key_invalid");
  EXPECT_EQ(Send("\"\"")->reply.code, "idempotency_key_invalid");
}

TEST_F(IdempotencyFilterTest, NoStoreIs503) {
  filter_ = std::make_unique<IdempotencyFilter>(route_, nullptr, FilterSeries{});
  auto e = Send("k6");
  EXPECT_EQ(e->reply.status, 503);
  EXPECT_EQ(e->reply.code, "idempotency_store_unavailable");
}

}  // namespace
}  // namespace ferry::idempotency
