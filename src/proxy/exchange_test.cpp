// The proxy path end to end inside one process: a WorkerState on a worker's io_context run by
// the test thread, a listener and a fake upstream on loopback port 0, a fake clock, and test
// filters built by test factories into the snapshot's per-route chains.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/read.hpp>
#include <boost/asio/this_coro.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "observability/metrics_registry.hpp"
#include "proxy/filter_registry.hpp"
#include "proxy/filter_wait.hpp"
#include "proxy/filters/forwarding.hpp"
#include "proxy/worker_state.hpp"
#include "upstream/resolver.hpp"

namespace ferry::proxy {
namespace {

using namespace std::chrono_literals;

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// A fake upstream: reads whole requests (content-length or chunked bodies), keeps them, and
// answers each with `response` unless on_request asks it to hang up instead.
struct Upstream {
  std::vector<std::string> requests;
  std::string response = "HTTP/1.1 200 OK\r\nserver: fake\r\ncontent-length: 2\r\n\r\nok";
  std::function<void(Upstream&)> on_request;  // after a request is read, before the answer
  bool hang_up = false;                       // set by on_request: close without answering
  int connections = 0;
};

// The length of the first whole request in `in`, or 0 if it is not all there yet.
std::size_t RequestLength(const std::string& in) {
  const std::size_t head_end = in.find("\r\n\r\n");
  if (head_end == std::string::npos) return 0;
  const std::string head = Lower(in.substr(0, head_end + 4));
  if (head.find("transfer-encoding: chunked") != std::string::npos) {
    const std::size_t end = in.find("\r\n0\r\n\r\n", head_end);
    return end == std::string::npos ? 0 : end + 7;
  }
  std::size_t length = 0;
  if (auto at = head.find("content-length: "); at != std::string::npos) {
    length = std::stoul(head.substr(at + 16));
  }
  return in.size() >= head_end + 4 + length ? head_end + 4 + length : 0;
}

Task<void> ServeUpstream(tcp::socket socket, Upstream* up) {
  std::string in;
  char buf[4096];
  for (;;) {
    std::size_t length = RequestLength(in);
    while (length == 0) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) co_return;
      in.append(buf, n);
      length = RequestLength(in);
    }
    up->requests.push_back(in.substr(0, length));
    in.erase(0, length);
    up->hang_up = false;
    if (up->on_request) up->on_request(*up);
    if (up->hang_up) co_return;  // the socket closes with the frame
    const std::string response = up->response;
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(response), kNoThrow);
    if (ec) co_return;
  }
}

Task<void> AcceptUpstream(tcp::acceptor* acceptor, Upstream* up) {
  for (;;) {
    auto [ec, socket] = co_await acceptor->async_accept(kNoThrow);
    if (ec) co_return;
    ++up->connections;
    asio::co_spawn(acceptor->get_executor(), ServeUpstream(std::move(socket), up), asio::detached);
  }
}

// Sends `request` on a new connection and reads the response until the proxy closes it.
Task<void> Client(tcp::endpoint proxy, std::string request, std::string* response, bool* done) {
  auto executor = co_await asio::this_coro::executor;
  tcp::socket socket(executor);
  auto [ec] = co_await socket.async_connect(proxy, kNoThrow);
  if (!ec) {
    auto [wec, written] = co_await asio::async_write(socket, asio::buffer(request), kNoThrow);
    (void)written;
    char buf[4096];
    for (;;) {
      if (wec) break;
      auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
      if (rec) break;
      response->append(buf, n);
    }
  }
  *done = true;
}

// --- Test filters ---

// Tags the request and the response with x-chain: <tag>, and drops the upstream's server field.
class Tag final : public Filter {
 public:
  explicit Tag(std::string tag) : tag_(std::move(tag)) {}
  std::string_view name() const override { return "tag"; }
  Verdict OnRequest(FilterContext& context) const override {
    context.request.headers.Add("x-chain", tag_);
    return Verdict::kContinue;
  }
  void OnResponse(FilterContext&, http::ResponseHead& response) const override {
    response.headers.Add("x-chain", tag_);
    response.headers.Remove("server");
  }

 private:
  std::string tag_;
};

// Answers at once, with headers and a body, when the request has x-deny.
class Deny final : public Filter {
 public:
  std::string_view name() const override { return "deny"; }
  Verdict OnRequest(FilterContext& context) const override {
    if (!context.request.headers.Has("x-deny")) return Verdict::kContinue;
    LocalReply& reply = context.Answer(429, "rate_limited");
    reply.headers.Add("retry-after", "7");
    reply.headers.Add("content-type", "text/plain");
    reply.body = "slow down\n";
    return Verdict::kReply;
  }
};

// Checks a bearer token: at once when there is none, else after a (real, short) wait, as a
// store lookup would.
class Token final : public WaitingFilter {
 public:
  std::string_view name() const override { return "token"; }
  Verdict OnRequest(FilterContext& context) const override {
    if (context.request.headers.Has("authorization")) return Verdict::kWait;
    context.Answer(401, "unauthorized").headers.Add("www-authenticate", "Bearer");
    return Verdict::kReply;
  }
  Task<Verdict> Wait(FilterContext& context) const override {
    auto executor = co_await asio::this_coro::executor;
    asio::steady_timer timer(executor);
    timer.expires_after(5ms);
    co_await timer.async_wait(kNoThrow);
    if (context.request.headers.Get("authorization") == "Bearer good") {
      context.request.headers.Add("x-user", "alice");
      co_return Verdict::kContinue;
    }
    context.Answer(403, "forbidden").body = "bad token\n";
    co_return Verdict::kReply;
  }
};

// Reads the body (up to 64 bytes): refuses one that says "forbidden", else tells its length.
class BodyCheck final : public Filter {
 public:
  std::string_view name() const override { return "body_check"; }
  std::uint64_t body_limit() const override { return 64; }
  Verdict OnRequest(FilterContext& context) const override {
    if (context.body.find("forbidden") != std::string_view::npos) {
      context.Answer(403, "forbidden_body").body = "no\n";
      return Verdict::kReply;
    }
    context.request.headers.Add("x-body-bytes", std::to_string(context.body.size()));
    return Verdict::kContinue;
  }
};

// What the Watch filter's observers saw, in order.
std::vector<std::string> watched;

class WatchObserver final : public ResponseObserver {
 public:
  void OnHead(int status, const http::Headers& headers) override {
    watched.push_back("head " + std::to_string(status) + " " +
                      std::string(headers.Get("server").value_or("-")));
  }
  void OnBody(std::string_view piece) override { watched.push_back("body " + std::string(piece)); }
  Task<void> OnComplete() override {
    watched.push_back("complete");
    co_return;
  }
  Task<void> OnLocalReply(int status) override {
    watched.push_back("local " + std::to_string(status));
    co_return;
  }
};

// Follows every exchange to its end (as the idempotency filter does).
class Watch final : public Filter {
 public:
  std::string_view name() const override { return "watch"; }
  Verdict OnRequest(FilterContext& context) const override {
    context.observers.push_back(std::make_unique<WatchObserver>());
    return Verdict::kContinue;
  }
};

bool OnRoute(const config::Route& route, std::string_view name) { return route.name == name; }

std::unique_ptr<const Filter> MakeTagV1(const config::Route& r, const config::Config&) {
  return OnRoute(r, "filtered") ? std::make_unique<Tag>("v1") : nullptr;
}
std::unique_ptr<const Filter> MakeTagV2(const config::Route& r, const config::Config&) {
  return OnRoute(r, "filtered") ? std::make_unique<Tag>("v2") : nullptr;
}
std::unique_ptr<const Filter> MakeDeny(const config::Route& r, const config::Config&) {
  return OnRoute(r, "filtered") ? std::make_unique<Deny>() : nullptr;
}
std::unique_ptr<const Filter> MakeToken(const config::Route& r, const config::Config&) {
  return OnRoute(r, "filtered") ? std::make_unique<Token>() : nullptr;
}
std::unique_ptr<const Filter> MakeBodyCheck(const config::Route& r, const config::Config&) {
  return OnRoute(r, "filtered") ? std::make_unique<BodyCheck>() : nullptr;
}

std::unique_ptr<const Filter> MakeWatch(const config::Route& r, const config::Config&) {
  return OnRoute(r, "filtered") ? std::make_unique<Watch>() : nullptr;
}

constexpr FilterFactory kV1[] = {{"forwarding", &filters::MakeForwarding},
                                 {"tag", &MakeTagV1},
                                 {"deny", &MakeDeny},
                                 {"token", &MakeToken},
                                 {"body_check", &MakeBodyCheck}};
constexpr FilterFactory kV2[] = {{"forwarding", &filters::MakeForwarding}, {"tag", &MakeTagV2}};
constexpr FilterFactory kWatch[] = {{"forwarding", &filters::MakeForwarding},
                                    {"watch", &MakeWatch}};

class ExchangeTest : public ::testing::Test {
 protected:
  void Start(std::span<const FilterFactory> factories) {
    upstream_acceptor_.open(tcp::v4());
    upstream_acceptor_.bind(tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    upstream_acceptor_.listen();
    asio::co_spawn(io(), AcceptUpstream(&upstream_acceptor_, &upstream_), asio::detached);
    const std::string yaml = R"(
listeners:
  - name: main
    listen: 127.0.0.1:0
    routes:
      - name: filtered
        match: {prefix: /f/}
        service: up
      - name: plain
        match: {prefix: /}
        service: up
services:
  up:
    endpoints: [127.0.0.1:)" +
                             std::to_string(upstream_acceptor_.local_endpoint().port()) + "]\n";
    auto loaded = config::LoadString(yaml, "t.yaml");
    ASSERT_TRUE(loaded) << loaded.error().message();
    config_ = *loaded;
    state_.ApplySnapshot(Build(factories));
    listener_ = std::make_shared<tcp::acceptor>(
        io(), tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    listen_at_ = listener_->local_endpoint();  // (the worker takes the acceptor over)
    state_.StartListener("main", listener_);
  }

  std::shared_ptr<const Snapshot> Build(std::span<const FilterFactory> factories) {
    return BuildSnapshot(config_, resolver_, metrics_, ++generation_, factories);
  }

  std::string Fetch(std::string request) {
    std::string response;
    bool done = false;
    asio::co_spawn(io(), Client(listen_at_, std::move(request), &response, &done), asio::detached);
    const auto until = std::chrono::steady_clock::now() + 10s;
    while (!done && std::chrono::steady_clock::now() < until) io().run_one_for(100ms);
    EXPECT_TRUE(done) << "no response within 10 s";
    return response;
  }

  void TearDown() override {
    // Every connection must end while the worker state lives (its handler is the state's).
    state_.StopAllListeners();
    state_.CloseAll();
    error_code ignored;
    upstream_acceptor_.close(ignored);
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (state_.connection_count() > 0 && std::chrono::steady_clock::now() < until) {
      io().run_one_for(50ms);
    }
    io().poll();
  }

  asio::io_context& io() { return worker_.io(); }

  runtime::Worker worker_{0};
  Upstream upstream_;
  tcp::acceptor upstream_acceptor_{worker_.io()};
  observability::MetricsRegistry registry_{1};
  ProxyMetrics metrics_{registry_};
  upstream::StaticResolver resolver_;
  FakeClock clock_;
  WorkerState state_{worker_, metrics_, nullptr, clock_};
  std::shared_ptr<const config::Config> config_;
  std::shared_ptr<tcp::acceptor> listener_;
  tcp::endpoint listen_at_;
  std::uint64_t generation_ = 0;
};

bool Has(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

TEST_F(ExchangeTest, ChainRunsPerRoute) {
  Start(kV1);
  const std::string filtered = Fetch("GET /f/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(filtered.starts_with("HTTP/1.1 401 ")) << filtered;  // the token filter ran
  const std::string plain = Fetch("GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(plain.starts_with("HTTP/1.1 200 ")) << plain;
  EXPECT_FALSE(Has(plain, "x-chain")) << plain;
  ASSERT_EQ(upstream_.requests.size(), 1u);
  EXPECT_TRUE(Has(upstream_.requests[0], "x-forwarded-for: 127.0.0.1")) << upstream_.requests[0];
  EXPECT_FALSE(Has(upstream_.requests[0], "x-chain")) << upstream_.requests[0];
}

TEST_F(ExchangeTest, ObserverSeesTheWholeResponseThenItsEnd) {
  Start(kWatch);
  watched.clear();
  const std::string r = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
      "Connection: close\r\n\r\nx");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 ")) << r;
  EXPECT_EQ(watched, (std::vector<std::string>{"head 200 fake", "body ok", "complete"}));
}

TEST_F(ExchangeTest, ObserverHearsOfTheLocalReplyInstead) {
  Start(kWatch);
  watched.clear();
  upstream_.on_request = [](Upstream& up) { up.hang_up = true; };
  const std::string r = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n"
      "Connection: close\r\n\r\nx");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 502 ")) << r;
  EXPECT_EQ(watched, (std::vector<std::string>{"local 502"}));
}

TEST_F(ExchangeTest, SyncFilterAnswersWithStatusHeadersAndBody) {
  Start(kV1);
  const std::string r = Fetch(
      "GET /f/x HTTP/1.1\r\nHost: a\r\nx-deny: 1\r\nx-request-id: rid-1\r\n"
      "Connection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 429 Too Many Requests\r\n")) << r;
  EXPECT_TRUE(Has(r, "\r\nretry-after: 7\r\n")) << r;
  EXPECT_TRUE(Has(r, "\r\ncontent-type: text/plain\r\n")) << r;
  EXPECT_TRUE(Has(r, "\r\ncontent-length: 10\r\n")) << r;
  EXPECT_TRUE(Has(r, "\r\nx-request-id: rid-1\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nslow down\n")) << r;
  EXPECT_TRUE(upstream_.requests.empty());
  EXPECT_TRUE(
      Has(registry_.RenderPrometheus(), R"(ferry_local_replies_total{code="rate_limited"} 1)"))
      << registry_.RenderPrometheus();
}

TEST_F(ExchangeTest, LocalReplyToHeadHasNoBody) {
  Start(kV1);
  const std::string r =
      Fetch("HEAD /f/x HTTP/1.1\r\nHost: a\r\nx-deny: 1\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 429 ")) << r;
  EXPECT_TRUE(Has(r, "\r\ncontent-length: 10\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\n")) << r;
}

TEST_F(ExchangeTest, WaitingFilterDecidesAtOnceWhenItCan) {
  Start(kV1);
  const std::string r = Fetch("GET /f/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 401 Unauthorized\r\n")) << r;
  EXPECT_TRUE(Has(r, "\r\nwww-authenticate: Bearer\r\n")) << r;
  EXPECT_TRUE(Has(r, "\r\ncontent-length: 0\r\n")) << r;
}

TEST_F(ExchangeTest, WaitingFilterContinuesAfterItsWait) {
  Start(kV1);
  const std::string r = Fetch(
      "GET /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 ")) << r;
  ASSERT_EQ(upstream_.requests.size(), 1u);
  EXPECT_TRUE(Has(upstream_.requests[0], "x-user: alice")) << upstream_.requests[0];
}

TEST_F(ExchangeTest, WaitingFilterAnswersAfterItsWait) {
  Start(kV1);
  const std::string r = Fetch(
      "GET /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer bad\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 403 Forbidden\r\n")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nbad token\n")) << r;
  EXPECT_TRUE(upstream_.requests.empty());
}

TEST_F(ExchangeTest, ResponseSideChangesHeaders) {
  Start(kV1);
  const std::string r = Fetch(
      "GET /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(Has(r, "\r\nx-chain: v1\r\n")) << r;
  EXPECT_FALSE(Has(r, "server: fake")) << r;
  ASSERT_EQ(upstream_.requests.size(), 1u);
  EXPECT_TRUE(Has(upstream_.requests[0], "x-chain: v1")) << upstream_.requests[0];
}

TEST_F(ExchangeTest, BodyReadingFilterSeesTheBodyThenItIsForwarded) {
  Start(kV1);
  const std::string r = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n"
      "Content-Length: 11\r\nConnection: close\r\n\r\nhello world");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 ")) << r;
  ASSERT_EQ(upstream_.requests.size(), 1u);
  const std::string& sent = upstream_.requests[0];
  EXPECT_TRUE(Has(sent, "x-body-bytes: 11")) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\nhello world")) << sent;
}

TEST_F(ExchangeTest, BufferedChunkedBodyGoesUpstreamWithItsLength) {
  Start(kV1);
  const std::string r = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 ")) << r;
  ASSERT_EQ(upstream_.requests.size(), 1u);
  const std::string sent = Lower(upstream_.requests[0]);
  EXPECT_TRUE(Has(sent, "content-length: 11\r\n")) << sent;
  EXPECT_FALSE(Has(sent, "transfer-encoding")) << sent;
  EXPECT_TRUE(sent.ends_with("\r\n\r\nhello world")) << sent;
}

TEST_F(ExchangeTest, BodyReadingFilterAnswers) {
  Start(kV1);
  const std::string r = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n"
      "Content-Length: 9\r\nConnection: close\r\n\r\nforbidden");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 403 ")) << r;
  EXPECT_TRUE(r.ends_with("\r\n\r\nno\n")) << r;
  EXPECT_TRUE(upstream_.requests.empty());
}

TEST_F(ExchangeTest, BodyOverTheFilterLimitIs413) {
  Start(kV1);
  const std::string body(65, 'x');
  const std::string r = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nContent-Length: 65\r\n"
      "Connection: close\r\n\r\n" +
      body);
  EXPECT_TRUE(r.starts_with("HTTP/1.1 413 ")) << r;
  EXPECT_TRUE(Has(r, R"("code":"body_too_large","status":413)")) << r;
  EXPECT_TRUE(Has(r, "the 64 bytes filter body_check reads")) << r;
  const std::string chunked = Fetch(
      "POST /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\n"
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n41\r\n" +
      body + "\r\n0\r\n\r\n");
  EXPECT_TRUE(chunked.starts_with("HTTP/1.1 413 ")) << chunked;
  EXPECT_TRUE(upstream_.requests.empty());
}

TEST_F(ExchangeTest, AnExchangeKeepsItsChainAcrossAReload) {
  Start(kV1);
  std::shared_ptr<const Snapshot> v2 = Build(kV2);
  // The reload lands while the upstream holds the first request.
  upstream_.on_request = [&](Upstream&) {
    state_.ApplySnapshot(v2);
    upstream_.on_request = nullptr;
  };
  const std::string first = Fetch(
      "GET /f/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer good\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(Has(first, "\r\nx-chain: v1\r\n")) << first;
  EXPECT_FALSE(Has(first, "v2")) << first;
  const std::string second = Fetch("GET /f/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(second.starts_with("HTTP/1.1 200 ")) << second;  // v2 has no token filter
  EXPECT_TRUE(Has(second, "\r\nx-chain: v2\r\n")) << second;
  ASSERT_EQ(upstream_.requests.size(), 2u);
  EXPECT_TRUE(Has(upstream_.requests[0], "x-chain: v1"));
  EXPECT_TRUE(Has(upstream_.requests[1], "x-chain: v2"));
}

// The keep-alive race: a pooled connection the upstream closes on receiving the request is
// retried once on a fresh one, with what is left of the route's timeout (15 s by default).
TEST_F(ExchangeTest, KeepAliveRaceIsRetried) {
  Start(BuiltinFilters());
  EXPECT_TRUE(Fetch("GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                  .starts_with("HTTP/1.1 200 "));
  upstream_.on_request = [](Upstream& up) {
    up.hang_up = true;
    up.on_request = nullptr;
  };
  const std::string r = Fetch("GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 200 ")) << r;
  EXPECT_EQ(upstream_.requests.size(), 3u);
  EXPECT_EQ(upstream_.connections, 2);
}

TEST_F(ExchangeTest, RetryAfterTheRouteTimeoutByTheClockIs504) {
  Start(BuiltinFilters());
  EXPECT_TRUE(Fetch("GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                  .starts_with("HTTP/1.1 200 "));
  upstream_.on_request = [this](Upstream& up) {
    clock_.Advance(20s);  // the route's 15 s are spent before the upstream hangs up
    up.hang_up = true;
    up.on_request = nullptr;
  };
  const std::string r = Fetch("GET /p HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(r.starts_with("HTTP/1.1 504 ")) << r;
  EXPECT_TRUE(Has(r, R"("code":"upstream_timeout","status":504)")) << r;
  EXPECT_TRUE(Has(r, "did not answer within 15s")) << r;
  EXPECT_EQ(upstream_.requests.size(), 2u);  // no retry was sent
}

}  // namespace
}  // namespace ferry::proxy
