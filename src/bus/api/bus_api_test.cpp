// The bus API's handler without sockets: BusServiceImpl opened inline on a temp-dir embedded
// broker (no bus thread, no listener), the test thread running its event loop. Requests go to
// Handle (the routes) or, for what the HTTP layer adds (headers, 204 without a body), through
// the src/server HTTP/1.1 server over an in-memory stream.
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "bus/api/bus_service_impl.hpp"
#include "bus/log/log_test_support.hpp"
#include "config/config.hpp"
#include "observability/metrics_registry.hpp"
#include "runtime/stream.hpp"

namespace ferry::bus {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string ConfigYaml(const std::string& data_dir) {
  return "bus:\n"
         "  listen: 127.0.0.1:0\n"
         "  data_dir: " +
         data_dir +
         "\n"
         "  queues:\n"
         "    q: {lease: 30s, max_deliveries: 3}\n"
         "  topics:\n"
         "    t:\n"
         "      subscriptions:\n"
         "        s: {}\n";
}

class BusApiTest : public ::testing::Test {
 protected:
  BusApiTest() : registry_(1) {
    auto config = config::LoadString(ConfigYaml(dir_.path()));
    EXPECT_TRUE(config.has_value()) << config.error().message();
    bus_ = std::make_unique<BusServiceImpl>(**config, registry_, 0);
    auto opened = bus_->OpenInline();
    EXPECT_TRUE(opened.has_value()) << opened.error().message();
  }
  ~BusApiTest() override { bus_->CloseInline(); }

  // A request to Handle, running in the background; poll its answer with RunUntil.
  struct Call {
    http::RequestHead head;
    std::string body;
    std::optional<ApiResponse> answer;
  };
  std::shared_ptr<Call> Start(std::string method, std::string target, std::string body = "",
                              std::string content_type = "text/plain") {
    auto call = std::make_shared<Call>();
    call->head.method = std::move(method);
    call->head.target = std::move(target);
    if (!call->body.empty() || !body.empty()) call->head.headers.Add("content-type", content_type);
    call->body = std::move(body);
    asio::co_spawn(
        bus_->io(),
        [this, call]() -> Task<void> {
          const std::function<bool()> alive = [] { return true; };
          const std::string_view body_view = call->body;
          ApiResponse answer = co_await bus_->Handle(call->head, body_view, alive);
          call->answer = std::move(answer);
        },
        asio::detached);
    return call;
  }
  // Runs the bus's loop until `done` or `limit`; whether `done` held.
  bool RunUntil(const std::function<bool()>& done, Clock::duration limit = 5s) {
    const auto until = Clock::now() + limit;
    while (!done() && Clock::now() < until) {
      bus_->io().restart();
      bus_->io().run_for(2ms);
    }
    return done();
  }
  ApiResponse Send(std::string method, std::string target, std::string body = "",
                   std::string content_type = "text/plain") {
    auto call =
        Start(std::move(method), std::move(target), std::move(body), std::move(content_type));
    EXPECT_TRUE(RunUntil([&] { return call->answer.has_value(); })) << "no answer";
    return call->answer.value_or(ApiResponse{0, "", ""});
  }
  static boost::json::object Body(const ApiResponse& r) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(r.body, ec);
    if (ec || !v.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << r.body;
      return {};
    }
    return v.as_object();
  }
  static std::string ErrorCodeOf(const ApiResponse& r) {
    const auto o = Body(r);
    const auto* error = o.if_contains("error");
    if (error == nullptr || !error->is_object()) return "(no error)";
    return std::string(error->as_object().at("code").as_string());
  }

  testing::TempDir dir_;
  observability::MetricsRegistry registry_;
  std::unique_ptr<BusServiceImpl> bus_;
};

TEST_F(BusApiTest, PublishReceiveAck) {
  const ApiResponse published = Send("POST", "/v1/queues/q/messages", "hello");
  ASSERT_EQ(published.status, 201) << published.body;
  const std::string id(Body(published).at("id").as_string());
  EXPECT_EQ(Body(published).at("sequence").as_int64(), 1);

  const ApiResponse got = Send("GET", "/v1/queues/q/messages?max=10");
  ASSERT_EQ(got.status, 200) << got.body;
  const auto messages = Body(got).at("messages").as_array();
  ASSERT_EQ(messages.size(), 1u);
  const auto& m = messages[0].as_object();
  EXPECT_EQ(m.at("id").as_string(), id);
  EXPECT_EQ(m.at("attempt").as_int64(), 1);
  const std::string receipt(m.at("receipt").as_string());

  // Leased: nothing more to take.
  EXPECT_EQ(Send("GET", "/v1/queues/q/messages").status, 204);

  const ApiResponse acked = Send("POST", "/v1/queues/q/ack",
                                 R"({"receipts": [")" + receipt + R"("]})", "application/json");
  ASSERT_EQ(acked.status, 200) << acked.body;
  EXPECT_EQ(boost::json::serialize(Body(acked).at("results")), R"(["ok"])");
  // Acked once: a second ack of the same receipt is stale (409), nothing changes.
  const ApiResponse again = Send("POST", "/v1/queues/q/ack",
                                 R"({"receipts": [")" + receipt + R"("]})", "application/json");
  EXPECT_EQ(again.status, 409) << again.body;
  EXPECT_EQ(ErrorCodeOf(again), "stale_receipt");

  const auto stats = Body(Send("GET", "/v1/queues/q"));
  EXPECT_EQ(stats.at("counts").as_object().at("acked").as_int64(), 1);
  // The embedded backend's storage counters, rendered as it names them.
  EXPECT_EQ(stats.at("messages_log").as_object().at("appends").as_int64(), 1);
  EXPECT_TRUE(stats.at("state_log").as_object().contains("fsync_batches"));
}

TEST_F(BusApiTest, NackRedeliversWithTheNextAttempt) {
  ASSERT_EQ(Send("POST", "/v1/queues/q/messages", "x").status, 201);
  const auto first = Body(Send("GET", "/v1/queues/q/messages")).at("messages").as_array();
  ASSERT_EQ(first.size(), 1u);
  const std::string receipt(first[0].as_object().at("receipt").as_string());
  ASSERT_EQ(Send("POST", "/v1/queues/q/nack",
                 R"({"receipts": [")" + receipt + R"("], "delay": "0s"})", "application/json")
                .status,
            200);
  ApiResponse second;
  bool redelivered = false;  // RunUntil asks again at the end: take the message once only
  ASSERT_TRUE(RunUntil([&] {
    if (!redelivered) {
      second = Send("GET", "/v1/queues/q/messages");
      redelivered = second.status == 200;
    }
    return redelivered;
  }));
  EXPECT_EQ(Body(second).at("messages").as_array()[0].as_object().at("attempt").as_int64(), 2);
}

TEST_F(BusApiTest, TopicEventsReachTheSubscription) {
  ASSERT_EQ(Send("POST", "/v1/topics/t/events", "e1").status, 201);
  const ApiResponse got = Send("GET", "/v1/topics/t/subscriptions/s/messages");
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(Body(got).at("messages").as_array().size(), 1u);
}

TEST_F(BusApiTest, UnknownThingsAre404) {
  EXPECT_EQ(Send("GET", "/v1/queues/nope/messages").status, 404);
  EXPECT_EQ(Send("POST", "/v1/queues/nope/messages", "x").status, 404);
  EXPECT_EQ(Send("GET", "/v1/topics/t/subscriptions/nope/messages").status, 404);
  const ApiResponse r = Send("GET", "/v1/queues/q/nothing");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCodeOf(r), "not_found");
  EXPECT_EQ(Send("GET", "/v2/queues").status, 404);
}

TEST_F(BusApiTest, AMethodThePathDoesNotTakeIs405WithAllow) {
  const ApiResponse r = Send("DELETE", "/v1/queues/q/messages");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET, POST");
  EXPECT_EQ(ErrorCodeOf(r), "method_not_allowed");
  EXPECT_EQ(Send("GET", "/v1/queues/q/ack").allow, "POST");
  EXPECT_EQ(Send("POST", "/v1/topics/t/subscriptions/s").allow, "GET, PUT, DELETE");
}

TEST_F(BusApiTest, BadRequestsAre400AndChangeNothing) {
  EXPECT_EQ(Send("GET", "/v1/queues/q/messages?max=0").status, 400);
  EXPECT_EQ(Send("GET", "/v1/queues/q/messages?wait=2m").status, 400);
  EXPECT_EQ(Send("GET", "/v1/queues/q/messages?format=xml").status, 400);
  EXPECT_EQ(Send("GET", "/v1/queues/..bad/messages").status, 400);
  EXPECT_EQ(Send("POST", "/v1/queues/q/ack", "not json", "application/json").status, 400);
  EXPECT_EQ(Send("POST", "/v1/queues/q/ack", R"({"receipts": []})", "application/json").status,
            400);
  const ApiResponse invalid =
      Send("POST", "/v1/queues/q/ack", R"({"receipts": ["nonsense"]})", "application/json");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_EQ(ErrorCodeOf(invalid), "invalid_receipt");
  const ApiResponse put =
      Send("PUT", "/v1/topics/t/subscriptions/s2", R"({"backoff": {"initial": "2s", "max": "1s"}})",
           "application/json");
  EXPECT_EQ(put.status, 400);
  EXPECT_NE(put.body.find("'backoff.max' (1s) must be at least 'backoff.initial' (2s)"),
            std::string::npos)
      << put.body;
  EXPECT_EQ(Send("GET", "/v1/topics/t/subscriptions/s2").status, 404);  // not created
  const auto stats = Body(Send("GET", "/v1/queues/q"));
  EXPECT_EQ(stats.at("counts").as_object().at("published").as_int64(), 0);
}

TEST_F(BusApiTest, ALongPollWakesWhenAMessageIsPublished) {
  const auto started = Clock::now();
  auto poll = Start("GET", "/v1/queues/q/messages?wait=20s");
  RunUntil([] { return false; }, 100ms);
  ASSERT_FALSE(poll->answer.has_value()) << "answered with nothing to take";
  ASSERT_EQ(Send("POST", "/v1/queues/q/messages", "late").status, 201);
  ASSERT_TRUE(RunUntil([&] { return poll->answer.has_value(); }, 5s));
  EXPECT_EQ(poll->answer->status, 200) << poll->answer->body;
  EXPECT_LT(Clock::now() - started, 5s);
  const auto messages = Body(*poll->answer).at("messages").as_array();
  ASSERT_EQ(messages.size(), 1u);
}

TEST_F(BusApiTest, ALongPollEndsEmptyAtItsWait) {
  const auto started = Clock::now();
  const ApiResponse r = Send("GET", "/v1/queues/q/messages?wait=300ms");
  EXPECT_EQ(r.status, 204);
  EXPECT_GE(Clock::now() - started, 300ms);
}

// Through the HTTP server over an in-memory connection: the head the API's answers get.
TEST_F(BusApiTest, OverAStreamA204HasNoBodyAndA405HasAllow) {
  auto [server_end, client_end] = runtime::MemoryStream::Pair(bus_->io().get_executor());
  bus_->ServeInline(std::move(server_end));
  std::string received;
  char buf[4096];
  bool eof = false;
  std::function<void()> collect = [&] {
    client_end->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) {
      if (ec) {
        eof = true;
        return;
      }
      received.append(buf, n);
      collect();
    });
  };
  collect();
  const std::string requests =
      "GET /v1/queues/q/messages HTTP/1.1\r\nHost: bus\r\n\r\n"
      "PUT /v1/queues/q HTTP/1.1\r\nHost: bus\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  asio::async_write(*client_end, asio::buffer(requests), [](error_code, std::size_t) {});
  ASSERT_TRUE(RunUntil([&] { return eof; })) << received;
  const std::size_t second = received.find("HTTP/1.1 405");
  ASSERT_NE(second, std::string::npos) << received;
  const std::string first = received.substr(0, second);
  EXPECT_EQ(first.rfind("HTTP/1.1 204", 0), 0u) << first;
  EXPECT_EQ(first.find("content-type"), std::string::npos) << first;
  EXPECT_TRUE(first.ends_with("\r\n\r\n")) << first;  // no body
  const std::string rest = received.substr(second);
  EXPECT_NE(rest.find("allow: GET\r\n"), std::string::npos) << rest;
  EXPECT_NE(rest.find("\"method_not_allowed\""), std::string::npos) << rest;
}

}  // namespace
}  // namespace ferry::bus
