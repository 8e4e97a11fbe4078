// HTTP/2 upstreams end to end over loopback sockets: the Cluster against an in-process nghttp2
// *server* session (this file): many concurrent Sends multiplexed on one connection, the
// streams-per-connection cap, REFUSED_STREAM and GOAWAY retried on another connection, a
// deadline resetting its stream (RST_STREAM CANCEL) and not the connection, and flow control
// with bodies larger than the windows both ways.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <boost/asio/thread_pool.hpp>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/acceptor.hpp"
#include "upstream/cluster.hpp"

namespace ferry::upstream {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// What the server does with a request whose head (and body) arrived.
enum class Action {
  kAnswer,  // 200, body "<method> <path> <request body size>" or `big` bytes
  kRefuse,  // RST_STREAM REFUSED_STREAM
  kGoAway,  // GOAWAY with last-stream-id below this stream (so it was not processed)
  kHang,    // never answer
};

struct ServerStream {
  std::string method;
  std::string path;
  std::string body;
  int connection = 0;
};

// An HTTP/2 server over TCP with nghttp2's server session, one per connection.
class H2Server {
 public:
  using Decide = std::function<Action(const ServerStream&, int nth)>;

  H2Server(asio::io_context& io, std::uint32_t max_streams, Decide decide)
      : max_streams_(max_streams), decide_(std::move(decide)) {
    auto acceptor = runtime::Acceptor::Open(io, config::Address{"127.0.0.1", 0}, false, 64);
    EXPECT_TRUE(acceptor);
    acceptor_ = std::move(*acceptor);
    port_ = acceptor_->local_port();
    asio::co_spawn(io, AcceptLoop(this), asio::detached);
  }
  ~H2Server() {
    acceptor_->Close();
    for (auto* c : live_) c->stream->Close();
  }

  std::uint16_t port() const { return port_; }
  int connections() const { return connections_; }
  int requests() const { return requests_; }
  int max_open() const { return max_open_; }  // most streams open at once on one connection
  std::vector<std::uint32_t> reset_codes;     // RST_STREAM codes the client sent
  std::vector<ServerStream> answered;
  // Answers are held until this many requests wait on one connection (0: answer at once).
  int batch = 0;
  std::size_t big = 0;  // > 0: answer bodies of this many bytes

 private:
  struct Conn {
    H2Server* server = nullptr;
    std::unique_ptr<runtime::Stream> stream;
    nghttp2_session* session = nullptr;
    int index = 0;
    std::map<std::int32_t, ServerStream> streams;
    std::vector<std::int32_t> held;              // waiting for the batch
    std::map<std::int32_t, std::string> bodies;  // answer bodies being sent
    std::map<std::int32_t, std::size_t> sent;
    // The session goes with the connection: also when a test ends while Serve is suspended
    // (its frame is destroyed then, without running to its end). Null is a no-op.
    ~Conn() { nghttp2_session_del(session); }
  };

  static ssize_t ReadAnswer(nghttp2_session*, std::int32_t id, std::uint8_t* buf,
                            std::size_t length, std::uint32_t* flags, nghttp2_data_source*,
                            void* user) {
    auto& c = *static_cast<Conn*>(user);
    const std::string& body = c.bodies[id];
    std::size_t& at = c.sent[id];
    const std::size_t n = std::min(length, body.size() - at);
    std::memcpy(buf, body.data() + at, n);
    at += n;
    if (at == body.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  }

  static void Answer(Conn& c, std::int32_t id) {
    ServerStream& s = c.streams[id];
    c.server->answered.push_back(s);
    std::string body = c.server->big > 0 ? std::string(c.server->big, 'x')
                                         : fmt::format("{} {} {}", s.method, s.path, s.body.size());
    c.bodies[id] = std::move(body);
    const std::string length = std::to_string(c.bodies[id].size());
    nghttp2_nv head[] = {
        {(std::uint8_t*)":status", (std::uint8_t*)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(std::uint8_t*)"content-length", (std::uint8_t*)length.data(), 14, length.size(),
         NGHTTP2_NV_FLAG_NONE}};
    nghttp2_data_provider data{};
    data.read_callback = ReadAnswer;
    nghttp2_submit_response(c.session, id, head, 2, &data);
  }

  static void Requested(Conn& c, std::int32_t id) {
    H2Server& server = *c.server;
    const int nth = server.requests_++;
    switch (server.decide_(c.streams[id], nth)) {
      case Action::kAnswer:
        if (server.batch == 0) {
          Answer(c, id);
          return;
        }
        c.held.push_back(id);
        if (static_cast<int>(c.held.size()) >= server.batch) {
          for (std::int32_t held : c.held) Answer(c, held);
          c.held.clear();
        }
        return;
      case Action::kRefuse:
        nghttp2_submit_rst_stream(c.session, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
        return;
      case Action::kGoAway:
        nghttp2_submit_goaway(c.session, NGHTTP2_FLAG_NONE, id - 2, NGHTTP2_NO_ERROR, nullptr, 0);
        return;
      case Action::kHang:
        return;
    }
  }

  static int OnBeginHeaders(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = *static_cast<Conn*>(user);
    c.streams[frame->hd.stream_id].connection = c.index;
    c.server->max_open_ = std::max(c.server->max_open_, static_cast<int>(c.streams.size()));
    return 0;
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* frame, const std::uint8_t* name,
                      std::size_t namelen, const std::uint8_t* value, std::size_t valuelen,
                      std::uint8_t, void* user) {
    auto& c = *static_cast<Conn*>(user);
    const std::string n(reinterpret_cast<const char*>(name), namelen);
    const std::string v(reinterpret_cast<const char*>(value), valuelen);
    ServerStream& s = c.streams[frame->hd.stream_id];
    if (n == ":method") s.method = v;
    if (n == ":path") s.path = v;
    return 0;
  }
  static int OnData(nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* data,
                    std::size_t len, void* user) {
    auto& c = *static_cast<Conn*>(user);
    c.streams[id].body.append(reinterpret_cast<const char*>(data), len);
    return 0;
  }
  static int OnFrame(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    auto& c = *static_cast<Conn*>(user);
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      Requested(c, frame->hd.stream_id);
    }
    return 0;
  }
  static int OnClose(nghttp2_session*, std::int32_t id, std::uint32_t code, void* user) {
    auto& c = *static_cast<Conn*>(user);
    if (code != NGHTTP2_NO_ERROR) c.server->reset_codes.push_back(code);
    c.streams.erase(id);
    std::erase(c.held, id);
    return 0;
  }

  static Task<void> AcceptLoop(H2Server* self) {
    for (;;) {
      auto stream = co_await self->acceptor_->Accept();
      if (!stream) co_return;
      const asio::any_io_executor executor = (*stream)->get_executor();
      asio::co_spawn(executor, Serve(self, std::move(*stream)), asio::detached);
    }
  }

  static Task<bool> Flush(Conn& c) {
    for (;;) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(c.session, &data);
      if (n <= 0) co_return n == 0;
      std::string out(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      auto [ec, written] = co_await asio::async_write(*c.stream, asio::buffer(out), kNoThrow);
      if (ec) co_return false;
    }
  }

  static Task<void> Serve(H2Server* self, std::unique_ptr<runtime::Stream> stream) {
    Conn c;
    c.server = self;
    c.stream = std::move(stream);
    c.index = self->connections_++;
    self->live_.push_back(&c);
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, OnBeginHeaders);
    nghttp2_session_callbacks_set_on_header_callback(cb, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, OnData);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, OnFrame);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, OnClose);
    nghttp2_session_server_new(&c.session, cb, &c);
    nghttp2_session_callbacks_del(cb);
    const nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, self->max_streams_}};
    nghttp2_submit_settings(c.session, NGHTTP2_FLAG_NONE, settings, 1);
    std::vector<std::uint8_t> buf(16384);
    bool ok = co_await Flush(c);
    while (ok) {
      auto [ec, n] = co_await c.stream->async_read_some(asio::buffer(buf), kNoThrow);
      if (ec || nghttp2_session_mem_recv(c.session, buf.data(), n) < 0) break;
      ok = co_await Flush(c);
    }
    std::erase(self->live_, &c);
  }

  std::uint32_t max_streams_;
  Decide decide_;
  std::unique_ptr<runtime::Acceptor> acceptor_;
  std::uint16_t port_ = 0;
  int connections_ = 0;
  int requests_ = 0;
  int max_open_ = 0;
  std::vector<Conn*> live_;
};

struct Got {
  int status = 0;
  std::string body;
  std::optional<Error> error;
};

Task<void> SendAndRead(std::shared_ptr<Cluster> cluster, Request* request,
                       Clock::time_point deadline, Got* got, int* done) {
  auto response = co_await cluster->Send(*request, deadline);
  if (!response) {
    got->error = response.error();
  } else {
    got->status = response->status;
    auto body = co_await response->body.ReadAll(64 << 20);
    if (body) {
      got->body = std::move(*body);
    } else {
      got->error = body.error();
    }
  }
  ++*done;
}

class Http2ClusterTest : public ::testing::Test {
 protected:
  std::shared_ptr<Cluster> Make(std::uint16_t port, std::uint32_t max_streams = 100) {
    ClusterOptions options;
    options.name = "h2";
    options.addresses = {config::Address{"127.0.0.1", port}};
    options.pool.connect_timeout = 1s;
    options.protocol = config::UpstreamProtocol::kHttp2;
    options.http2_max_streams = max_streams;
    auto cluster = Cluster::Create(io_, options, std::make_shared<StaticResolver>(),
                                   resolve_pool_.get_executor());
    cluster->Refresh(Clock::now());
    return cluster;
  }
  // Sends `n` requests at once (POST with `body` if not empty) and runs until all end.
  std::vector<Got> SendMany(const std::shared_ptr<Cluster>& cluster, int n,
                            const std::string& body = "", Clock::duration timeout = 5s) {
    std::vector<Request> requests(n);
    std::vector<StringBody> bodies(n, StringBody(body));
    std::vector<Got> got(n);
    int done = 0;
    for (int i = 0; i < n; ++i) {
      requests[i].target = fmt::format("/r{}", i);
      if (!body.empty()) {
        requests[i].method = "POST";
        requests[i].body = &bodies[i];
      }
      asio::co_spawn(io_,
                     SendAndRead(cluster, &requests[i], Clock::now() + timeout, &got[i], &done),
                     asio::detached);
    }
    const auto until = Clock::now() + timeout + 5s;
    while (done < n && Clock::now() < until) {
      io_.restart();
      io_.run_for(2ms);
    }
    EXPECT_EQ(done, n) << "requests did not finish";
    return got;
  }
  void RunFor(Clock::duration d) {
    io_.restart();
    io_.run_for(d);
  }

  asio::io_context io_;
  asio::thread_pool resolve_pool_{1};
};

TEST_F(Http2ClusterTest, ManyConcurrentSendsShareOneConnection) {
  H2Server server(io_, 100, [](const ServerStream&, int) { return Action::kAnswer; });
  server.batch = 20;  // no answer until 20 streams are open at once on one connection
  auto cluster = Make(server.port());
  const std::vector<Got> got = SendMany(cluster, 20);
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(got[i].error) << got[i].error->message();
    EXPECT_EQ(got[i].status, 200);
    EXPECT_EQ(got[i].body, fmt::format("GET /r{} 0", i));
  }
  EXPECT_EQ(server.connections(), 1);
  EXPECT_EQ(server.max_open(), 20);
  EXPECT_EQ(cluster->endpoints()[0]->pool->open(), 1u);
}

TEST_F(Http2ClusterTest, TheStreamCapOpensMoreConnections) {
  // The service's cap (4) is below the server's (100): 12 requests at once need 3 connections.
  H2Server server(io_, 100, [](const ServerStream&, int) { return Action::kAnswer; });
  server.batch = 4;
  auto cluster = Make(server.port(), 4);
  const std::vector<Got> got = SendMany(cluster, 12);
  for (const Got& g : got) EXPECT_EQ(g.status, 200);
  EXPECT_EQ(server.connections(), 3);
  EXPECT_EQ(server.max_open(), 4);
}

TEST_F(Http2ClusterTest, TheServersMaxConcurrentStreamsIsHonoured) {
  // The server allows 2 streams: once its SETTINGS are known, a connection takes no third
  // lease, and more requests at once go to other connections (streams sent on a new one
  // before its SETTINGS came that the server refuses are sent again). None of them fails.
  H2Server server(io_, 2, [](const ServerStream&, int) { return Action::kAnswer; });
  auto cluster = Make(server.port(), 100);
  ASSERT_EQ(SendMany(cluster, 1)[0].status, 200);  // the connection knows the limit now
  const std::vector<Got> got = SendMany(cluster, 6);
  for (const Got& g : got) {
    ASSERT_FALSE(g.error) << g.error->message();
    EXPECT_EQ(g.status, 200);
  }
  EXPECT_GE(server.connections(), 2);
  EXPECT_LE(server.max_open(), 2);
}

TEST_F(Http2ClusterTest, RefusedStreamIsRetriedOnAnotherConnection) {
  H2Server server(io_, 100, [](const ServerStream&, int nth) {
    return nth == 0 ? Action::kRefuse : Action::kAnswer;
  });
  auto cluster = Make(server.port());
  const std::vector<Got> got = SendMany(cluster, 1, "payload");  // a POST: still retried
  ASSERT_FALSE(got[0].error) << got[0].error->message();
  EXPECT_EQ(got[0].body, "POST /r0 7");
  EXPECT_EQ(server.requests(), 2);
  EXPECT_EQ(server.connections(), 2);
}

TEST_F(Http2ClusterTest, StreamsAboveGoAwaysLastStreamIdAreRetried) {
  // The second request's stream makes the server send GOAWAY(last = the first's id): the
  // first is answered on the old connection, the second goes again on a new one, and the old
  // connection takes no new streams.
  H2Server server(io_, 100, [](const ServerStream&, int nth) {
    return nth == 1 ? Action::kGoAway : Action::kAnswer;
  });
  server.batch = 0;
  auto cluster = Make(server.port());
  const std::vector<Got> got = SendMany(cluster, 2);
  for (const Got& g : got) {
    ASSERT_FALSE(g.error) << g.error->message();
    EXPECT_EQ(g.status, 200);
  }
  EXPECT_EQ(server.connections(), 2);
  EXPECT_EQ(server.answered.size(), 2u);
  const std::vector<Got> more = SendMany(cluster, 3);
  for (const Got& g : more) EXPECT_EQ(g.status, 200);
  EXPECT_EQ(server.connections(), 2);  // the new connection, not the one that said GOAWAY
  for (std::size_t i = 2; i < server.answered.size(); ++i) {
    EXPECT_EQ(server.answered[i].connection, 1);
  }
}

TEST_F(Http2ClusterTest, ADeadlineResetsTheStreamNotTheConnection) {
  H2Server server(io_, 100, [](const ServerStream& s, int) {
    return s.path == "/r0" && s.method == "GET" ? Action::kHang : Action::kAnswer;
  });
  auto cluster = Make(server.port());
  const std::vector<Got> got = SendMany(cluster, 1, "", 200ms);
  ASSERT_TRUE(got[0].error);
  EXPECT_EQ(got[0].error->code(), ErrorCode::kDeadlineExceeded);
  RunFor(50ms);  // the RST_STREAM reaches the server
  ASSERT_EQ(server.reset_codes.size(), 1u);
  EXPECT_EQ(server.reset_codes[0], static_cast<std::uint32_t>(NGHTTP2_CANCEL));
  const std::vector<Got> next = SendMany(cluster, 1, "again");  // POST /r0: answered
  ASSERT_FALSE(next[0].error) << next[0].error->message();
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(Http2ClusterTest, BodiesLargerThanTheWindowsFlowBothWays) {
  // 3 MiB up (the server's window is 64 KiB: the body waits for WINDOW_UPDATEs) and 8 MiB
  // down (ours is 1 MiB per stream: the reads reopen it), on two streams at once.
  H2Server server(io_, 100, [](const ServerStream&, int) { return Action::kAnswer; });
  server.big = 8 << 20;
  auto cluster = Make(server.port());
  const std::string body(3 << 20, 'b');
  const std::vector<Got> got = SendMany(cluster, 2, body, 20s);
  for (const Got& g : got) {
    ASSERT_FALSE(g.error) << g.error->message();
    EXPECT_EQ(g.body.size(), std::size_t{8} << 20);
  }
  ASSERT_EQ(server.answered.size(), 2u);
  EXPECT_EQ(server.answered[0].body.size(), body.size());
  EXPECT_EQ(server.connections(), 1);
}

}  // namespace
}  // namespace ferry::upstream
