// The upstream client end to end over real loopback sockets, against a tiny scripted HTTP/1.1
// server in this file: keep-alive reuse, the keep-alive race retry, connect refused, the
// deadline, streamed bodies both ways, DNS changes (StaticResolver) and endpoint health.
#include "upstream/cluster.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "runtime/acceptor.hpp"
#include "runtime/connect.hpp"
#include "upstream/health_checker.hpp"

namespace ferry::upstream {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// --- A scripted server: reads each request (content-length or chunked body), answers what the
// handler says.
struct Reply {
  std::string bytes;         // the raw response
  bool close_after = false;  // close the connection after writing it
  bool hang = false;         // write nothing, keep the connection open
  bool drop = false;         // close at once without answering
};
struct Seen {
  int connection;  // 0-based, in accept order
  int request;     // 0-based on its connection
  std::string head;
  std::string body;
};
using Handler = std::function<Reply(const Seen&)>;

Reply Ok(std::string_view body) {
  return {fmt::format("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{}", body.size(), body)};
}

class TestServer {
 public:
  TestServer(asio::io_context& io, Handler handler, std::string ip = "127.0.0.1",
             std::uint16_t port = 0)
      : handler_(std::move(handler)) {
    auto acceptor = runtime::Acceptor::Open(io, config::Address{ip, port}, false, 64);
    EXPECT_TRUE(acceptor) << (acceptor ? "" : acceptor.error().message());
    acceptor_ = std::move(*acceptor);
    port_ = acceptor_->local_port();
    asio::co_spawn(io, AcceptLoop(this), asio::detached);
  }
  ~TestServer() {
    acceptor_->Close();
    for (auto& s : held_) s->Close();
  }
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  const std::vector<Seen>& seen() const { return seen_; }

 private:
  static Task<void> AcceptLoop(TestServer* self) {
    for (;;) {
      auto stream = co_await self->acceptor_->Accept();
      if (!stream) co_return;
      const asio::any_io_executor executor = (*stream)->get_executor();
      asio::co_spawn(executor, Serve(self, std::move(*stream), self->connections_++),
                     asio::detached);
    }
  }
  // Reads until `in` holds `what`; false on EOF or error.
  static Task<bool> ReadUntil(runtime::Stream& s, std::string& in, std::string_view what) {
    char buf[4096];
    while (in.find(what) == std::string::npos) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) co_return false;
      in.append(buf, n);
    }
    co_return true;
  }
  static Task<bool> ReadBytes(runtime::Stream& s, std::string& in, std::size_t want) {
    char buf[4096];
    while (in.size() < want) {
      auto [ec, n] = co_await s.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) co_return false;
      in.append(buf, n);
    }
    co_return true;
  }
  static Task<void> Serve(TestServer* self, std::unique_ptr<runtime::Stream> stream,
                          int connection) {
    runtime::Stream& s = *stream;
    std::string in;
    for (int request = 0;; ++request) {
      if (!co_await ReadUntil(s, in, "\r\n\r\n")) co_return;
      Seen seen{connection, request, in.substr(0, in.find("\r\n\r\n") + 4), ""};
      in.erase(0, seen.head.size());
      std::string lower = seen.head;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (const auto at = lower.find("content-length: "); at != std::string::npos) {
        const std::size_t n = std::stoul(lower.substr(at + 16));
        if (!co_await ReadBytes(s, in, n)) co_return;
        seen.body = in.substr(0, n);
        in.erase(0, n);
      } else if (lower.find("transfer-encoding: chunked") != std::string::npos) {
        for (;;) {
          if (!co_await ReadUntil(s, in, "\r\n")) co_return;
          const std::size_t size = std::stoul(in.substr(0, in.find("\r\n")), nullptr, 16);
          in.erase(0, in.find("\r\n") + 2);
          if (!co_await ReadBytes(s, in, size + 2)) co_return;
          seen.body += in.substr(0, size);
          in.erase(0, size + 2);
          if (size == 0) break;
        }
      }
      self->seen_.push_back(seen);
      const Reply reply = self->handler_(seen);
      if (reply.drop) {
        s.Close();
        co_return;
      }
      if (reply.hang) {
        self->held_.push_back(std::move(stream));
        co_return;
      }
      auto [ec, n] = co_await asio::async_write(s, asio::buffer(reply.bytes), kNoThrow);
      if (ec || reply.close_after) {
        s.Close();
        co_return;
      }
    }
  }

  Handler handler_;
  std::unique_ptr<runtime::Acceptor> acceptor_;
  std::uint16_t port_ = 0;
  int connections_ = 0;
  std::vector<Seen> seen_;
  std::vector<std::unique_ptr<runtime::Stream>> held_;
};

// A loopback port nothing listens on (it was bound a moment ago).
std::uint16_t ClosedPort(asio::io_context& io) {
  auto acceptor = runtime::Acceptor::Open(io, {"127.0.0.1", 0}, false, 1);
  EXPECT_TRUE(acceptor);
  return acceptor ? (*acceptor)->local_port() : 1;
}

// --- Running coroutines to completion on the test's loop.
template <typename T>
Task<void> StoreInto(Task<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}

template <typename Pred>
void RunUntil(asio::io_context& io, Pred done, Clock::duration limit = 5s) {
  const auto until = Clock::now() + limit;
  while (!done() && Clock::now() < until) {
    io.restart();
    io.run_for(2ms);
  }
}

template <typename T>
T Await(asio::io_context& io, Task<T> task) {
  std::optional<T> out;
  asio::co_spawn(io, StoreInto(std::move(task), &out), asio::detached);
  RunUntil(io, [&] { return out.has_value(); });
  EXPECT_TRUE(out.has_value()) << "the coroutine did not finish";
  if (!out) std::abort();
  return std::move(*out);
}

// A Send and its whole body, in one coroutine.
struct Got {
  int status = 0;
  std::string body;
  std::optional<Error> error;
};
Task<Got> SendAndRead(Cluster& cluster, Request& request, Clock::time_point deadline) {
  Got got;
  auto response = co_await cluster.Send(request, deadline);
  if (!response) {
    got.error = response.error();
    co_return got;
  }
  got.status = response->status;
  auto body = co_await response->body.ReadAll(1 << 20);
  if (!body) {
    got.error = body.error();
    co_return got;
  }
  got.body = std::move(*body);
  co_return got;
}

class ClusterTest : public ::testing::Test {
 protected:
  std::shared_ptr<Cluster> Make(std::vector<config::Address> addresses,
                                std::shared_ptr<Resolver> resolver = nullptr) {
    ClusterOptions options;
    options.name = "svc";
    options.addresses = std::move(addresses);
    options.pool.connect_timeout = 1s;
    options.resolve_interval = 10ms;
    if (!resolver) resolver = std::make_shared<StaticResolver>();
    auto cluster = Cluster::Create(io_, options, std::move(resolver), resolve_pool_.get_executor());
    cluster->Refresh(Clock::now());
    return cluster;
  }
  Got Send(Cluster& cluster, std::string target = "/", Clock::duration timeout = 2s) {
    Request request;
    request.target = std::move(target);
    return Await(io_, SendAndRead(cluster, request, Clock::now() + timeout));
  }

  asio::io_context io_;
  asio::thread_pool resolve_pool_{1};
};

TEST_F(ClusterTest, ReusesAKeepAliveConnection) {
  TestServer server(io_, [](const Seen& s) { return Ok("hello " + std::to_string(s.request)); });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  for (int i = 0; i < 3; ++i) {
    const Got got = Send(*cluster);
    ASSERT_FALSE(got.error) << got.error->message();
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body, "hello " + std::to_string(i));
  }
  EXPECT_EQ(server.connections(), 1);
  ASSERT_EQ(cluster->endpoints().size(), 1u);
  const Endpoint& e = *cluster->endpoints()[0];
  EXPECT_EQ(e.pool->connects(), 1u);
  EXPECT_EQ(e.pool->idle(), 1u);
  EXPECT_EQ(e.health.successes, 3u);
  EXPECT_EQ(e.health.in_flight, 0u);
  // The request went out framed by Send, with the endpoint as its host.
  EXPECT_NE(server.seen()[0].head.find("host: 127.0.0.1:"), std::string::npos);
}

TEST_F(ClusterTest, AResponseWithoutKeepAliveClosesTheConnection) {
  TestServer server(io_, [](const Seen&) {
    return Reply{"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\nx", true};
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  EXPECT_EQ(Send(*cluster).body, "x");
  EXPECT_EQ(Send(*cluster).body, "x");
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(cluster->endpoints()[0]->pool->idle(), 0u);
}

TEST_F(ClusterTest, BytesPastTheResponseCloseTheConnection) {
  TestServer server(io_, [](const Seen&) {
    return Reply{"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nxHTTP/1.1 200 OK\r\n"};
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  EXPECT_EQ(Send(*cluster).body, "x");
  EXPECT_EQ(cluster->endpoints()[0]->pool->open(), 0u);  // out of step: never reused
  EXPECT_EQ(Send(*cluster).body, "x");
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(ClusterTest, RetriesOnceOnAFreshConnectionAfterTheKeepAliveRace) {
  // The second request on the first connection meets a close (the upstream's idle timeout
  // crossing it): it goes again on a new connection.
  TestServer server(io_, [](const Seen& s) {
    if (s.connection == 0 && s.request == 1) return Reply{"", false, false, true};
    return Ok("fine");
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  EXPECT_EQ(Send(*cluster).body, "fine");
  const Got got = Send(*cluster);
  ASSERT_FALSE(got.error) << got.error->message();
  EXPECT_EQ(got.body, "fine");
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(cluster->stats().keepalive_retries, 1u);
}

// A body source that cannot start again (bytes read from a client are gone).
class OnceBody final : public BodySource {
 public:
  explicit OnceBody(std::vector<std::string> pieces) : pieces_(std::move(pieces)) {}
  std::optional<std::uint64_t> length() const override { return std::nullopt; }
  Task<Result<std::string_view>> Read() override {
    if (next_ == pieces_.size()) co_return std::string_view();
    co_return std::string_view(pieces_[next_++]);
  }
  bool Rewind() override { return false; }

 private:
  std::vector<std::string> pieces_;
  std::size_t next_ = 0;
};

TEST_F(ClusterTest, DoesNotRetryARequestWhoseBodyCannotBeReplayed) {
  TestServer server(io_, [](const Seen& s) {
    if (s.connection == 0 && s.request == 1) return Reply{"", false, false, true};
    return Ok("fine");
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  EXPECT_EQ(Send(*cluster).body, "fine");
  OnceBody body({"a", "b"});
  Request request;
  request.method = "POST";
  request.body = &body;
  const Got got = Await(io_, SendAndRead(*cluster, request, Clock::now() + 2s));
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code(), ErrorCode::kConnectionClosed) << got.error->message();
  EXPECT_EQ(cluster->stats().keepalive_retries, 0u);
}

TEST_F(ClusterTest, StreamsARequestBodyChunkedAndAStringBodyWithItsLength) {
  TestServer server(io_, [](const Seen& s) { return Ok(s.body); });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  OnceBody streamed({"one,", "two,", "three"});
  Request request;
  request.method = "POST";
  request.headers.Add("content-length", "999");  // replaced: Send frames the body
  request.body = &streamed;
  Got got = Await(io_, SendAndRead(*cluster, request, Clock::now() + 2s));
  ASSERT_FALSE(got.error) << got.error->message();
  EXPECT_EQ(got.body, "one,two,three");
  EXPECT_NE(server.seen()[0].head.find("transfer-encoding: chunked"), std::string::npos);
  EXPECT_EQ(server.seen()[0].head.find("content-length"), std::string::npos);

  StringBody whole("all of it");
  Request second;
  second.method = "PUT";
  second.body = &whole;
  got = Await(io_, SendAndRead(*cluster, second, Clock::now() + 2s));
  EXPECT_EQ(got.body, "all of it");
  EXPECT_NE(server.seen()[1].head.find("content-length: 9"), std::string::npos);
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(ClusterTest, ConnectRefusedIsConnectFailedAndCountsAgainstTheEndpoint) {
  auto cluster = Make({{"127.0.0.1", ClosedPort(io_)}});
  for (std::uint32_t i = 1; i <= 2; ++i) {
    const Got got = Send(*cluster);
    ASSERT_TRUE(got.error);
    EXPECT_EQ(got.error->code(), ErrorCode::kConnectFailed) << got.error->message();
    const EndpointHealth& h = cluster->endpoints()[0]->health;
    EXPECT_EQ(h.consecutive_failures, i);
    EXPECT_EQ(h.failures, i);
    EXPECT_NE(h.last_failure, Clock::time_point{});
    EXPECT_EQ(h.in_flight, 0u);
  }
}

TEST_F(ClusterTest, HealthCountsConsecutiveFailuresUntilASuccess) {
  int answered = 0;
  TestServer server(io_, [&](const Seen&) {
    if (answered++ < 2) return Reply{"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n", true};
    return Ok("y");
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  // A body cut short is a failure of the endpoint...
  for (int i = 0; i < 2; ++i) {
    const Got got = Send(*cluster);
    ASSERT_TRUE(got.error);
    EXPECT_EQ(got.error->code(), ErrorCode::kConnectionClosed) << got.error->message();
  }
  const EndpointHealth& h = cluster->endpoints()[0]->health;
  EXPECT_EQ(h.consecutive_failures, 2u);
  // ...and a response read to its end a success, which ends the run.
  EXPECT_EQ(Send(*cluster).body, "y");
  EXPECT_EQ(h.consecutive_failures, 0u);
  EXPECT_EQ(h.failures, 2u);
}

TEST_F(ClusterTest, AnUpstreamThatDoesNotAnswerEndsAtTheDeadline) {
  TestServer server(io_, [](const Seen&) { return Reply{"", false, true}; });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  const auto started = Clock::now();
  const Got got = Send(*cluster, "/", 100ms);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code(), ErrorCode::kDeadlineExceeded) << got.error->message();
  EXPECT_LT(Clock::now() - started, 2s);
  EXPECT_EQ(cluster->endpoints()[0]->pool->open(), 0u);
}

TEST_F(ClusterTest, ABodyThatStallsEndsAtTheDeadline) {
  TestServer server(io_, [](const Seen&) {
    return Reply{"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc"};  // 7 bytes never come
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  const Got got = Send(*cluster, "/", 100ms);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code(), ErrorCode::kDeadlineExceeded) << got.error->message();
  EXPECT_EQ(cluster->endpoints()[0]->pool->open(), 0u);
  EXPECT_EQ(cluster->endpoints()[0]->health.consecutive_failures, 1u);
}

TEST_F(ClusterTest, ReadsAResponseBodyPieceByPieceAndThenReusesTheConnection) {
  const std::string big(200 * 1024, 'z');
  TestServer server(io_, [&](const Seen& s) {
    if (s.request == 0) {
      return Reply{
          "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
          "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"};
    }
    return Ok(big);
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});

  struct Pieces {
    std::vector<std::string> pieces;
    std::optional<std::uint64_t> length;
    bool done_before = false;
    bool done_after = false;
  };
  const auto read = [&](std::string target) {
    return Await(io_, [](Cluster& c, std::string t) -> Task<Result<Pieces>> {
      Request request;
      request.target = t;
      auto response = co_await c.Send(request, Clock::now() + 2s);
      if (!response) co_return tl::unexpected(response.error());
      Pieces out;
      out.length = response->body.length();
      out.done_before = response->body.done();
      for (;;) {
        auto piece = co_await response->body.ReadSome();
        if (!piece) co_return tl::unexpected(piece.error());
        if (piece->empty()) break;
        out.pieces.emplace_back(*piece);
      }
      out.done_after = response->body.done();
      co_return out;
    }(*cluster, std::move(target)));
  };
  auto chunked = read("/chunked");
  ASSERT_TRUE(chunked) << chunked.error().message();
  EXPECT_EQ(chunked->pieces, (std::vector<std::string>{"abc", "defg"}));
  EXPECT_FALSE(chunked->length);
  EXPECT_FALSE(chunked->done_before);
  EXPECT_TRUE(chunked->done_after);
  EXPECT_EQ(cluster->endpoints()[0]->pool->idle(), 1u);

  auto large = read("/big");
  ASSERT_TRUE(large) << large.error().message();
  EXPECT_GT(large->pieces.size(), 1u);  // more than one read buffer's worth
  std::string joined;
  for (const auto& p : large->pieces) joined += p;
  EXPECT_EQ(joined, big);
  EXPECT_EQ(large->length, big.size());
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(cluster->endpoints()[0]->pool->idle(), 1u);
}

// Records the interim responses it sees.
class Interims final : public InterimSink {
 public:
  Task<bool> OnInterim(int status, std::string_view, const http::Headers& headers) override {
    seen.push_back(fmt::format("{} {}", status, headers.Get("link").value_or("")));
    co_return true;
  }
  std::vector<std::string> seen;
};

TEST_F(ClusterTest, InterimResponsesGoToTheSinkOrAreSkipped) {
  TestServer server(io_, [](const Seen&) {
    return Reply{
        "HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n"
        "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfinal"};
  });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  Interims sink;
  Request request;
  request.interim = &sink;
  Got got = Await(io_, SendAndRead(*cluster, request, Clock::now() + 2s));
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "final");
  EXPECT_EQ(sink.seen, std::vector<std::string>{"103 </a.css>"});
  got = Send(*cluster);  // no sink: skipped
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "final");
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(ClusterTest, AnEmptyBodyGivesTheConnectionBackWithoutBeingRead) {
  TestServer server(io_, [](const Seen&) { return Reply{"HTTP/1.1 204 No Content\r\n\r\n"}; });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  Request request;
  auto response = Await(io_, cluster->Send(request, Clock::now() + 2s));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 204);
  EXPECT_TRUE(response->body.done());
  EXPECT_EQ(cluster->endpoints()[0]->pool->idle(), 1u);
  EXPECT_EQ(cluster->endpoints()[0]->health.in_flight, 0u);
}

TEST_F(ClusterTest, AnUnreadBodyClosesTheConnection) {
  TestServer server(io_, [](const Seen&) { return Ok("unread"); });
  auto cluster = Make({{"127.0.0.1", server.port()}});
  {
    Request request;
    auto response = Await(io_, cluster->Send(request, Clock::now() + 2s));
    ASSERT_TRUE(response);
    EXPECT_EQ(cluster->endpoints()[0]->health.in_flight, 1u);
  }
  EXPECT_EQ(cluster->endpoints()[0]->health.in_flight, 0u);
  EXPECT_EQ(cluster->endpoints()[0]->pool->open(), 0u);
}

TEST_F(ClusterTest, PicksUpADnsChange) {
  TestServer a(
      io_, [](const Seen&) { return Ok("a"); }, "127.0.0.1");
  TestServer b(
      io_, [](const Seen&) { return Ok("b"); }, "127.0.0.2", a.port());
  auto resolver = std::make_shared<StaticResolver>();
  resolver->Set("svc.test", {"127.0.0.1"});
  auto cluster = Make({{"svc.test", a.port()}}, resolver);  // Refresh: a round off the loop
  RunUntil(io_, [&] { return cluster->stats().resolutions == 1; });
  ASSERT_EQ(cluster->endpoints().size(), 1u);
  EXPECT_EQ(Send(*cluster).body, "a");

  std::this_thread::sleep_for(20ms);         // past resolve_interval
  resolver->Set("svc.test", {"127.0.0.2"});  // no round runs now: Set is safe
  cluster->Refresh(Clock::now());
  RunUntil(io_, [&] { return cluster->stats().resolutions == 2; });
  ASSERT_EQ(cluster->endpoints().size(), 1u);
  EXPECT_EQ(cluster->endpoints()[0]->id, "127.0.0.2:" + std::to_string(a.port()));
  EXPECT_EQ(Send(*cluster).body, "b");
}

TEST_F(ClusterTest, AHashKeyKeepsGoingToOneEndpoint) {
  TestServer a(io_, [](const Seen&) { return Ok("a"); });
  TestServer b(io_, [](const Seen&) { return Ok("b"); });
  ClusterOptions options;
  options.name = "svc";
  options.addresses = {{"127.0.0.1", a.port()}, {"127.0.0.1", b.port()}};
  options.lb = config::LbPolicy::kHash;
  auto cluster = Cluster::Create(io_, options, std::make_shared<StaticResolver>(),
                                 resolve_pool_.get_executor());
  cluster->ResolveNow();
  std::set<std::string> answered_by[2];
  for (int i = 0; i < 10; ++i) {
    for (int key = 0; key < 2; ++key) {
      Request request;
      request.hash_key = HashKey("key-" + std::to_string(key));
      auto response = Await(io_, cluster->Send(request, Clock::now() + 2s));
      ASSERT_TRUE(response) << response.error().message();
      ASSERT_TRUE(response->endpoint);
      answered_by[key].insert(response->endpoint->id);
      auto drained = Await(io_, response->body.Drain(1024));
      EXPECT_TRUE(drained);
    }
  }
  EXPECT_EQ(answered_by[0].size(), 1u);
  EXPECT_EQ(answered_by[1].size(), 1u);
}

TEST_F(ClusterTest, AvoidPicksAnotherEndpointWhenThereIsOne) {
  TestServer a(io_, [](const Seen&) { return Ok("a"); });
  TestServer b(io_, [](const Seen&) { return Ok("b"); });
  TestServer c(io_, [](const Seen&) { return Ok("c"); });
  for (const config::LbPolicy lb : {config::LbPolicy::kRoundRobin, config::LbPolicy::kRandom,
                                    config::LbPolicy::kLeastRequest, config::LbPolicy::kHash}) {
    ClusterOptions options;
    options.name = "svc";
    options.addresses = {{"127.0.0.1", a.port()}, {"127.0.0.1", b.port()}, {"127.0.0.1", c.port()}};
    options.lb = lb;
    auto cluster = Cluster::Create(io_, options, std::make_shared<StaticResolver>(),
                                   resolve_pool_.get_executor());
    cluster->ResolveNow();
    for (int i = 0; i < 12; ++i) {
      const Endpoint* avoid = cluster->endpoints()[i % 3].get();
      Request request;
      request.avoid = avoid;
      request.hash_key = HashKey("key-" + std::to_string(i % 2));
      auto response = Await(io_, cluster->Send(request, Clock::now() + 2s));
      ASSERT_TRUE(response) << response.error().message();
      EXPECT_NE(response->endpoint.get(), avoid) << static_cast<int>(lb) << " " << i;
      EXPECT_TRUE(Await(io_, response->body.Drain(1024)));
    }
  }
  // The only endpoint is still used when it is the one to avoid.
  auto single = Make({{"127.0.0.1", a.port()}});
  Request request;
  request.avoid = single->endpoints()[0].get();
  const Got got = Await(io_, SendAndRead(*single, request, Clock::now() + 2s));
  ASSERT_FALSE(got.error) << got.error->message();
  EXPECT_EQ(got.body, "a");
}

TEST_F(ClusterTest, SkipsAnEjectedEndpointUntilItsEjectionEnds) {
  TestServer good(io_, [](const Seen&) { return Ok("good"); });
  TestServer bad(io_, [](const Seen&) {
    return Reply{"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"};
  });
  FakeClock clock;
  auto health = std::make_shared<ServiceHealth>("svc");
  config::OutlierDetectionPolicy policy;
  policy.consecutive_failures = 2;
  policy.base_ejection = 30s;
  health->SetOutlierDetection(policy);
  ClusterOptions options;
  options.name = "svc";
  options.addresses = {{"127.0.0.1", good.port()}, {"127.0.0.1", bad.port()}};
  options.clock = &clock;
  options.health = health;
  auto cluster = Cluster::Create(io_, options, std::make_shared<StaticResolver>(),
                                 resolve_pool_.get_executor());
  cluster->ResolveNow();
  auto send = [&] {
    Request request;
    return Await(io_, SendAndRead(*cluster, request, clock.now() + 2s));
  };
  int failed = 0;
  for (int i = 0; i < 4; ++i) failed += send().status == 500 ? 1 : 0;  // round robin
  EXPECT_EQ(failed, 2);
  EXPECT_EQ(health->counts(clock.now()).ejected, 1u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(send().body, "good");
  EXPECT_EQ(bad.seen().size(), 2u);
  clock.Advance(30s);  // back
  failed = 0;
  for (int i = 0; i < 4; ++i) failed += send().status == 500 ? 1 : 0;
  EXPECT_GE(failed, 1);
  EXPECT_GE(bad.seen().size(), 3u);
}

TEST_F(ClusterTest, EndpointsFailingTheirHealthCheckAreSkippedAndNoneLeftIsUnavailable) {
  TestServer a(io_, [](const Seen&) { return Ok("a"); });
  TestServer b(io_, [](const Seen&) { return Ok("b"); });
  auto health = std::make_shared<ServiceHealth>("svc");
  auto cluster = Make({{"127.0.0.1", a.port()}, {"127.0.0.1", b.port()}});
  ClusterOptions options;
  options.name = "svc";
  options.health = health;
  const std::string a_id = "127.0.0.1:" + std::to_string(a.port());
  const std::string b_id = "127.0.0.1:" + std::to_string(b.port());
  cluster->Update(options, {{a_id, "127.0.0.1", a.port()}, {b_id, "127.0.0.1", b.port()}});
  health->CheckResult(a_id, false, 1, 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Send(*cluster).body, "b");
  health->CheckResult(b_id, false, 1, 1);
  const Got none = Send(*cluster);
  ASSERT_TRUE(none.error);
  EXPECT_EQ(none.error->code(), ErrorCode::kUnavailable);
  health->CheckResult(a_id, true, 1, 1);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(Send(*cluster).body, "a");
}

TEST_F(ClusterTest, TheHealthCheckerMarksEndpointsByTheirHealthPath) {
  bool b_fails = true;
  TestServer a(io_, [](const Seen&) { return Ok("ok"); });
  TestServer b(io_, [&](const Seen&) {
    if (b_fails) return Reply{"HTTP/1.1 503 Sick\r\ncontent-length: 0\r\n\r\n"};
    return Ok("ok");
  });
  auto health = std::make_shared<ServiceHealth>("svc");
  const std::string a_id = "127.0.0.1:" + std::to_string(a.port());
  const std::string b_id = "127.0.0.1:" + std::to_string(b.port());
  health->SetEndpoints({a_id, b_id});
  auto healthy = [&] { return health->counts(Clock::now()).healthy; };
  HealthChecker checker(io_);
  config::HealthCheck check;
  check.path = "/ready";
  check.interval = 20ms;
  check.timeout = 500ms;
  check.unhealthy_after = 2;
  check.healthy_after = 2;
  checker.Apply(
      {{"svc", check, {{a_id, "127.0.0.1", a.port()}, {b_id, "127.0.0.1", b.port()}}, health}});
  RunUntil(io_, [&] { return healthy() == 1; });
  EXPECT_EQ(healthy(), 1u);
  EXPECT_FALSE(health->Status(b_id)->Usable(Clock::now()));
  ASSERT_FALSE(b.seen().empty());
  EXPECT_EQ(b.seen()[0].head.rfind("GET /ready HTTP/1.1\r\n", 0), 0u) << b.seen()[0].head;

  b_fails = false;
  RunUntil(io_, [&] { return healthy() == 2; });
  EXPECT_EQ(healthy(), 2u);
  EXPECT_GE(health->counts(Clock::now()).checks_failed, 2u);

  // Without the health block, the checks stop and their verdicts go.
  b_fails = true;
  RunUntil(io_, [&] { return healthy() == 1; });
  checker.Apply({});
  EXPECT_EQ(healthy(), 2u);
  const std::size_t checks = b.seen().size();
  RunUntil(
      io_, [] { return false; }, 100ms);
  EXPECT_LE(b.seen().size(), checks + 1);  // one may have been in flight
}

TEST_F(ClusterTest, NoEndpointIsUnavailable) {
  auto resolver = std::make_shared<StaticResolver>();
  auto cluster = Make({{"nowhere.test", 80}}, resolver);
  RunUntil(io_, [&] { return cluster->stats().resolutions == 1; });
  const Got got = Send(*cluster);
  ASSERT_TRUE(got.error);
  EXPECT_EQ(got.error->code(), ErrorCode::kUnavailable);
}

TEST(Connect, RefusedIsConnectFailed) {
  asio::io_context io;
  auto got = Await(io, runtime::Connect(io, "127.0.0.1", ClosedPort(io), 1s));
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code(), ErrorCode::kConnectFailed);
  auto bad = Await(io, runtime::Connect(io, "not-an-ip", 80, 1s));
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace ferry::upstream
