#include "server/server.hpp"

#include <gtest/gtest.h>

#include <list>
#include <optional>
#include <string>

namespace ferry::server {
namespace {

using namespace std::chrono_literals;

// Routes by path: /echo answers the body it read whole, /pieces streams it back piece by
// piece, /slow answers after `slow_for`, /silent answers nothing, anything else says its
// method and target.
class TestHandler : public Handler {
 public:
  explicit TestHandler(asio::io_context& io) : io_(io) {}

  Task<void> Serve(Request& request, Response& response) override {
    ++calls;
    last_head_fields = 0;
    request.head().headers.ForEach([&](const http::Headers::Field&) { ++last_head_fields; });
    saw_transfer_encoding = request.head().headers.Has("transfer-encoding");
    saw_expect = request.head().headers.Has("expect");
    expects_continue = request.expects_continue();
    const std::string_view path = request.head().path();
    if (path == "/echo") {
      co_await Echo(request, response);
    } else if (path == "/pieces") {
      co_await Pieces(request, response);
    } else if (path == "/slow") {
      asio::steady_timer timer(io_, slow_for);
      co_await timer.async_wait(kNoThrow);
      head_.status = 200;
      head_.headers.Clear();
      co_await response.Send(head_, "slow\n");
    } else if (path == "/silent") {
      co_return;
    } else {
      head_.status = 200;
      head_.headers.Clear();
      head_.headers.Add("content-type", "text/plain");
      body_ = request.head().method + " " + request.head().target + "\n";
      co_await response.Send(head_, body_);
    }
  }

  void ConnectionOpened() override { ++opened; }
  void ConnectionClosed() override { ++closed; }

  int calls = 0;
  int opened = 0;
  int closed = 0;
  int last_head_fields = 0;
  bool saw_transfer_encoding = false;
  bool saw_expect = false;
  bool expects_continue = false;
  Duration slow_for = 50ms;

 private:
  Task<void> Echo(Request& request, Response& response) {
    auto body = co_await request.ReadWhole(1 << 20);
    if (!body) co_return;  // the server answers the error
    head_.status = 200;
    head_.headers.Clear();
    co_await response.Send(head_, *body);
  }
  Task<void> Pieces(Request& request, Response& response) {
    head_.status = 200;
    head_.headers.Clear();
    response.WriteHead(head_, std::nullopt);
    for (;;) {
      auto piece = co_await request.ReadSome();
      if (!piece || piece->empty()) break;
      if (!co_await response.WriteBody(*piece)) co_return;
    }
    co_await response.Finish();
  }

  asio::io_context& io_;
  ResponseHead head_;
  std::string body_;
};

// One server on a loop, and a client end of an in-memory connection that collects whatever
// the server writes.
class ServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = {}) {
    server_ = std::make_unique<Server>(io_, options, handler_);
    client_ = Connect();
  }
  std::unique_ptr<runtime::MemoryStream> Connect() {
    auto [server_end, client_end] = runtime::MemoryStream::Pair(io_.get_executor());
    server_->Serve(std::move(server_end));
    return std::move(client_end);
  }
  void Send(runtime::Stream& client, std::string_view bytes) {
    sent_.emplace_back(bytes);
    asio::async_write(client, asio::buffer(sent_.back()), [](error_code, std::size_t) {});
  }
  void Send(std::string_view bytes) { Send(*client_, bytes); }
  // Reads what the server writes on `client` into `into` until EOF (sets *eof).
  void Collect(runtime::Stream& client, std::string* into, bool* eof) {
    client.async_read_some(asio::buffer(buf_),
                           [this, &client, into, eof](error_code ec, std::size_t n) {
                             if (ec) {
                               *eof = true;
                               return;
                             }
                             into->append(buf_, n);
                             Collect(client, into, eof);
                           });
  }
  void Collect() { Collect(*client_, &received_, &eof_); }
  template <typename Pred>
  bool RunUntil(Pred done, Duration limit = 2s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!done() && std::chrono::steady_clock::now() < until) {
      io_.restart();
      io_.run_for(2ms);
    }
    return done();
  }
  static int Count(std::string_view text, std::string_view what) {
    int n = 0;
    for (std::size_t at = text.find(what); at != std::string_view::npos;
         at = text.find(what, at + 1)) {
      ++n;
    }
    return n;
  }

  asio::io_context io_;
  TestHandler handler_{io_};
  std::unique_ptr<Server> server_;
  std::unique_ptr<runtime::MemoryStream> client_;
  std::list<std::string> sent_;
  std::string received_;
  bool eof_ = false;
  char buf_[4096];
};

TEST_F(ServerTest, AnswersARequestAndKeepsTheConnection) {
  Start();
  Collect();
  Send("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("GET /a?b=1\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << received_;
  EXPECT_NE(received_.find("content-length: 11\r\n"), std::string::npos) << received_;
  EXPECT_EQ(received_.find("connection: close"), std::string::npos) << received_;
  EXPECT_FALSE(eof_);
  Send("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("GET /second\n") != std::string::npos; }));
  EXPECT_EQ(handler_.calls, 2);
}

TEST_F(ServerTest, AnswersPipelinedRequestsInOrder) {
  Start();
  Collect();
  handler_.slow_for = 30ms;
  Send(
      "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /one HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /two HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  const std::size_t slow = received_.find("slow\n");
  const std::size_t one = received_.find("GET /one\n");
  const std::size_t two = received_.find("GET /two\n");
  ASSERT_NE(slow, std::string::npos) << received_;
  ASSERT_NE(one, std::string::npos) << received_;
  ASSERT_NE(two, std::string::npos) << received_;
  EXPECT_LT(slow, one);
  EXPECT_LT(one, two);
  EXPECT_EQ(Count(received_, "HTTP/1.1 200 OK"), 3);
  EXPECT_EQ(Count(received_, "connection: close"), 1);
}

TEST_F(ServerTest, HeadGetsTheLengthAndNoBody) {
  Start();
  Collect();
  Send("HEAD /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_NE(received_.find("content-length: 8\r\n"), std::string::npos) << received_;
  EXPECT_EQ(received_.substr(received_.find("\r\n\r\n") + 4), "");
}

TEST_F(ServerTest, HttpTenGetsKeepAliveOnlyWhenItAsks) {
  Start();
  Collect();
  Send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("GET /a\n") != std::string::npos; }));
  EXPECT_NE(received_.find("connection: keep-alive\r\n"), std::string::npos) << received_;
  Send("GET /b HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_NE(received_.find("connection: close\r\n"), std::string::npos) << received_;
}

TEST_F(ServerTest, ReadsAWholeBodyAndAChunkedOne) {
  Start();
  Collect();
  Send("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
  ASSERT_TRUE(RunUntil([&] { return received_.find("hello") != std::string::npos; }));
  received_.clear();
  Send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
  Send("2\r\nde\r\n0\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("abcde") != std::string::npos; }));
  EXPECT_NE(received_.find("content-length: 5\r\n"), std::string::npos) << received_;
  EXPECT_FALSE(handler_.saw_transfer_encoding);  // framing stays in the codec
}

TEST_F(ServerTest, StreamsAResponseChunked) {
  Start();
  Collect();
  Send("POST /pieces HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz");
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_NE(received_.find("transfer-encoding: chunked\r\n"), std::string::npos) << received_;
  EXPECT_NE(received_.find("\r\n\r\n3\r\nxyz\r\n0\r\n\r\n"), std::string::npos) << received_;
}

TEST_F(ServerTest, TooManyHeaderBytesGet431AndClose) {
  ServerOptions options;
  options.max_header_bytes = 64;
  Start(options);
  Collect();
  Send("GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(100, 'a') + "\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 431 ", 0), 0u) << received_;
  EXPECT_NE(received_.find(R"("code":"headers_too_large","status":431)"), std::string::npos);
  EXPECT_NE(received_.find("connection: close\r\n"), std::string::npos);
  client_->ShutdownSend();
  EXPECT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ServerTest, TooManyFieldsGet431) {
  ServerOptions options;
  options.max_headers = 3;
  Start(options);
  Collect();
  Send("GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 431 ", 0), 0u) << received_;
  EXPECT_NE(received_.find("more than 3 header fields"), std::string::npos) << received_;
}

TEST_F(ServerTest, ADeclaredBodyOverTheLimitGets413BeforeItIsRead) {
  ServerOptions options;
  options.max_body_bytes = 10;
  Start(options);
  Collect();
  Send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 413 ", 0), 0u) << received_;  // and no 100 before it
  EXPECT_NE(received_.find(R"("code":"body_too_large")"), std::string::npos);
  EXPECT_NE(received_.find("connection: close\r\n"), std::string::npos);
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(ServerTest, AChunkedBodyOverTheLimitGets413) {
  ServerOptions options;
  options.max_body_bytes = 4;
  Start(options);
  Collect();
  Send(
      "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 413 ", 0), 0u) << received_;
}

TEST_F(ServerTest, ExpectContinueGets100WhenTheHandlerReadsTheBody) {
  Start();
  Collect();
  Send("POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return !received_.empty(); }));
  EXPECT_EQ(received_, "HTTP/1.1 100 Continue\r\n\r\n");
  Send("body");
  ASSERT_TRUE(RunUntil([&] { return received_.find("body") != std::string::npos; }));
  EXPECT_NE(received_.find("HTTP/1.1 200 OK\r\n"), std::string::npos) << received_;
}

TEST_F(ServerTest, ExpectContinueGetsTheFinalStatusAtOnceWhenTheBodyIsNotRead) {
  Start();
  Collect();
  Send("POST /other HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("POST /other\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << received_;  // no 100 first
  EXPECT_NE(received_.find("connection: close\r\n"), std::string::npos) << received_;
  EXPECT_TRUE(handler_.expects_continue);  // what the handler is told instead of the header
  EXPECT_FALSE(handler_.saw_expect);
}

TEST_F(ServerTest, MalformedHeadsGet400) {
  Start();
  Collect();
  Send("GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 400 ", 0), 0u) << received_;
  EXPECT_NE(received_.find("more than one Host header"), std::string::npos) << received_;
}

TEST_F(ServerTest, AHeadNotReceivedInTimeGets408) {
  ServerOptions options;
  options.header_read_timeout = 30ms;
  Start(options);
  Collect();
  Send("GET / HTTP/1.1\r\nHo");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 408 ", 0), 0u) << received_;
  EXPECT_NE(received_.find(R"("code":"request_timeout")"), std::string::npos);
}

TEST_F(ServerTest, ASilentConnectionIsClosedWithoutAnAnswer) {
  ServerOptions options;
  options.header_read_timeout = 20ms;
  Start(options);
  Collect();
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_EQ(received_, "");
}

TEST_F(ServerTest, AnIdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions options;
  options.idle_timeout = 30ms;
  Start(options);
  Collect();
  Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_EQ(Count(received_, "HTTP/1.1 200"), 1);
}

TEST_F(ServerTest, AHandlerWithoutAnAnswerGives500) {
  Start();
  Collect();
  Send("GET /silent HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 500 ", 0), 0u) << received_;
}

TEST_F(ServerTest, DrainClosesIdleConnectionsAndFinishesTheOneInFlight) {
  Start();
  handler_.slow_for = 60ms;
  auto idle = Connect();
  std::string idle_received;
  bool idle_eof = false;
  Collect();
  Collect(*idle, &idle_received, &idle_eof);
  Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return handler_.calls == 1; }));
  server_->Drain();
  bool waited = false;
  asio::co_spawn(io_, server_->Wait(), [&](std::exception_ptr) { waited = true; });
  ASSERT_TRUE(RunUntil([&] { return idle_eof; }, 30ms));  // closed at once
  EXPECT_EQ(idle_received, "");
  EXPECT_FALSE(eof_);  // the in-flight one still runs
  ASSERT_TRUE(RunUntil([&] { return waited; }));
  EXPECT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_NE(received_.find("slow\n"), std::string::npos) << received_;
  EXPECT_NE(received_.find("connection: close\r\n"), std::string::npos) << received_;
  EXPECT_EQ(server_->connection_count(), 0u);
}

TEST_F(ServerTest, CloseEndsAHandlerThatWaits) {
  Start();
  handler_.slow_for = 10s;
  Collect();
  Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return handler_.calls == 1; }));
  server_->Close();
  bool waited = false;
  asio::co_spawn(io_, server_->Wait(), [&](std::exception_ptr) { waited = true; });
  EXPECT_TRUE(RunUntil([&] { return waited; }, 1s));
  EXPECT_TRUE(RunUntil([&] { return eof_; }, 1s));
}

TEST_F(ServerTest, AnIdleConnectionParksAndResumesOnItsNextRequest) {
  ServerOptions options;
  options.park_after = 10ms;
  Start(options);
  Collect();
  Send("GET /first HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return server_->parked_count() == 1; }));
  EXPECT_NE(received_.find("GET /first\n"), std::string::npos) << received_;
  EXPECT_EQ(server_->connection_count(), 1u);  // parked ones count
  Send("GET /second HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("GET /second\n") != std::string::npos; }));
  EXPECT_EQ(handler_.calls, 2);
  EXPECT_EQ(handler_.opened, 1);  // one connection, resumed: not opened again
  EXPECT_EQ(handler_.closed, 0);
  EXPECT_FALSE(eof_);
  ASSERT_TRUE(RunUntil([&] { return server_->parked_count() == 1; }));  // parks again
}

TEST_F(ServerTest, AParkedConnectionClosesAtItsIdleTimeout) {
  ServerOptions options;
  options.park_after = 10ms;
  options.idle_timeout = 100ms;
  Start(options);
  Collect();
  Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return server_->parked_count() == 1; }));
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_EQ(handler_.closed, 1);
}

TEST_F(ServerTest, DrainClosesParkedConnections) {
  ServerOptions options;
  options.park_after = 10ms;
  Start(options);
  Collect();
  Send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return server_->parked_count() == 1; }));
  server_->Drain();
  EXPECT_EQ(server_->connection_count(), 0u);
  EXPECT_EQ(handler_.closed, 1);
  bool waited = false;
  asio::co_spawn(io_, server_->Wait(), [&](std::exception_ptr) { waited = true; });
  EXPECT_TRUE(RunUntil([&] { return eof_; }, 1s));
  EXPECT_TRUE(RunUntil([&] { return waited; }, 1s));
}

TEST_F(ServerTest, ANewConnectionThatSendsNothingDoesNotPark) {
  ServerOptions options;
  options.park_after = 10ms;
  options.header_read_timeout = 200ms;
  Start(options);
  Collect();
  RunUntil([] { return false; }, 100ms);
  EXPECT_EQ(server_->parked_count(), 0u);
  ASSERT_TRUE(RunUntil([&] { return eof_; }));  // its header_read_timeout closes it
}

}  // namespace
}  // namespace ferry::server
