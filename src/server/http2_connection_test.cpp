// The server's HTTP/2 connections over an in-memory connection, driven by a raw nghttp2 client
// session: h2c detection, streams served concurrently, bodies both ways past the flow-control
// windows, a reset stream's handler cancelled, drain's two GOAWAYs.
#include "server/http2_connection.hpp"

#include <gtest/gtest.h>
#include <nghttp2/nghttp2.h>

#include <list>
#include <map>
#include <string>

namespace ferry::server {
namespace {

using namespace std::chrono_literals;

TEST(MatchPreface, TellsThePrefaceFromAHead) {
  EXPECT_EQ(MatchPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), PrefaceMatch::kYes);
  EXPECT_EQ(MatchPreface("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00"), PrefaceMatch::kYes);
  EXPECT_EQ(MatchPreface("PRI * HT"), PrefaceMatch::kPartial);
  EXPECT_EQ(MatchPreface("GET / HTTP/1.1\r\n"), PrefaceMatch::kNo);
  EXPECT_EQ(MatchPreface("PRIX"), PrefaceMatch::kNo);
}

// /echo answers the body read whole; /pieces streams it back as it reads; /hang waits until
// cancelled (and records that); anything else says its method, target and Host.
class TestHandler : public Handler {
 public:
  explicit TestHandler(asio::io_context& io) : io_(io) {}
  Task<void> Serve(Request& request, Response& response) override {
    ++calls;
    if (auto te = request.head().headers.Get("te")) saw_te = std::string(*te);
    ResponseHead head;
    head.status = 200;
    head.headers.Add("X-Served", "yes");  // upper case: sent lowercase
    const std::string_view path = request.head().path();
    if (path == "/echo") {
      auto body = co_await request.ReadWhole(64 << 20);
      if (!body) co_return;
      std::string copy(*body);
      co_await response.Send(head, copy);
    } else if (path == "/pieces") {
      response.WriteHead(head, std::nullopt);
      for (;;) {
        auto piece = co_await request.ReadSome();
        if (!piece || piece->empty()) break;
        if (!co_await response.WriteBody(*piece)) co_return;
      }
      co_await response.Finish();
    } else if (path == "/trailers") {
      // Reads the body, records its trailers, answers a streamed body with trailers.
      auto body = co_await request.ReadWhole(64 << 20);
      if (!body) co_return;
      if (const http::Headers* t = request.trailers()) {
        t->ForEach([&](const http::Headers::Field& f) {
          request_trailers += std::string(f.name) + "=" + std::string(f.value) + ";";
        });
      }
      response.WriteHead(head, std::nullopt);
      const std::string_view piece = "abc";
      if (!co_await response.WriteBody(std::span<const std::string_view>(&piece, 1))) co_return;
      http::Headers trailers;
      trailers.Add("Grpc-Status", "0");
      trailers.Add("content-length", "3");  // may not be a trailer: dropped
      co_await response.FinishWithTrailers(trailers);
    } else if (path == "/empty") {
      response.WriteHead(head, std::nullopt);  // no body, no trailers: one HEADERS frame
      co_await response.Finish();
    } else if (path == "/slow") {
      ++hanging;
      asio::steady_timer timer(io_, 300ms);
      co_await timer.async_wait(kNoThrow);
      co_await response.Send(head, "slow");
    } else if (path == "/hang") {
      ++hanging;
      asio::steady_timer timer(io_, 1h);
      auto [ec] = co_await timer.async_wait(kNoThrow);
      if (ec == asio::error::operation_aborted) ++cancelled;
    } else {
      const std::string body = request.head().method + " " + request.head().target + " " +
                               std::string(request.head().headers.Get("host").value_or("-"));
      co_await response.Send(head, body);
    }
  }
  void ConnectionOpened() override { ++opened; }
  void ConnectionClosed() override { ++closed; }

  int calls = 0, hanging = 0, cancelled = 0, opened = 0, closed = 0;
  std::string saw_te;
  std::string request_trailers;  // /trailers: the request's, as "name=value;" pairs

 private:
  asio::io_context& io_;
};

// A raw nghttp2 client on the other end of the in-memory connection.
class Client {
 public:
  struct Reply {
    int status = 0;
    std::string body;
    std::map<std::string, std::string> headers;  // the trailers' too
    int header_frames = 0;
    int data_frames = 0;
    bool closed = false;
    std::uint32_t error = 0;
  };

  explicit Client(std::unique_ptr<runtime::MemoryStream> stream) : stream_(std::move(stream)) {
    nghttp2_session_callbacks* cb = nullptr;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_header_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, const std::uint8_t* n, std::size_t nl,
               const std::uint8_t* v, std::size_t vl, std::uint8_t, void* u) {
          auto& r = static_cast<Client*>(u)->replies[f->hd.stream_id];
          std::string name(reinterpret_cast<const char*>(n), nl);
          std::string value(reinterpret_cast<const char*>(v), vl);
          if (name == ":status") r.status = std::stoi(value);
          r.headers[name] = value;
          return 0;
        });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cb, [](nghttp2_session*, std::uint8_t, std::int32_t id, const std::uint8_t* d,
               std::size_t n, void* u) {
          static_cast<Client*>(u)->replies[id].body.append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(
        cb, [](nghttp2_session*, std::int32_t id, std::uint32_t error, void* u) {
          auto& r = static_cast<Client*>(u)->replies[id];
          r.closed = true;
          r.error = error;
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(
        cb, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
          auto* c = static_cast<Client*>(u);
          if (f->hd.type == NGHTTP2_GOAWAY) c->goaways.push_back(f->goaway.last_stream_id);
          if (f->hd.type == NGHTTP2_PING && !(f->hd.flags & NGHTTP2_FLAG_ACK)) ++c->pings;
          if (f->hd.type == NGHTTP2_HEADERS) ++c->replies[f->hd.stream_id].header_frames;
          if (f->hd.type == NGHTTP2_DATA) ++c->replies[f->hd.stream_id].data_frames;
          return 0;
        });
    nghttp2_session_client_new(&session_, cb, this);
    nghttp2_session_callbacks_del(cb);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
    Read();
  }
  ~Client() { nghttp2_session_del(session_); }

  std::int32_t Request(const std::string& method, const std::string& path,
                       const std::string* body = nullptr,
                       std::vector<std::pair<std::string, std::string>> extra = {}) {
    std::vector<std::pair<std::string, std::string>> fields = {
        {":method", method}, {":scheme", "http"}, {":path", path}, {":authority", "a.test"}};
    for (auto& f : extra) fields.push_back(f);
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : fields) {
      nva.push_back({reinterpret_cast<std::uint8_t*>(n.data()),
                     reinterpret_cast<std::uint8_t*>(v.data()), n.size(), v.size(),
                     NGHTTP2_NV_FLAG_NONE});
    }
    nghttp2_data_provider provider{};
    if (body != nullptr) {
      bodies_.push_back({*body, 0});
      provider.source.ptr = &bodies_.back();
      provider.read_callback = [](nghttp2_session* session, std::int32_t id, std::uint8_t* buf,
                                  std::size_t length, std::uint32_t* flags,
                                  nghttp2_data_source* source, void* user) -> ssize_t {
        auto* b = static_cast<std::pair<std::string, std::size_t>*>(source->ptr);
        const std::size_t n = std::min(length, b->first.size() - b->second);
        std::memcpy(buf, b->first.data() + b->second, n);
        b->second += n;
        if (b->second == b->first.size()) {
          *flags |= NGHTTP2_DATA_FLAG_EOF;
          auto* c = static_cast<Client*>(user);
          if (!c->trailers.empty()) {  // the body's trailers, in a HEADERS frame of their own
            std::vector<nghttp2_nv> nva;
            for (auto& [name, value] : c->trailers) {
              nva.push_back({reinterpret_cast<std::uint8_t*>(name.data()),
                             reinterpret_cast<std::uint8_t*>(value.data()), name.size(),
                             value.size(), NGHTTP2_NV_FLAG_NONE});
            }
            nghttp2_submit_trailer(session, id, nva.data(), nva.size());
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          }
        }
        return static_cast<ssize_t>(n);
      };
    }
    const std::int32_t id = nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(),
                                                   body != nullptr ? &provider : nullptr, nullptr);
    Flush();
    return id;
  }
  void Reset(std::int32_t id) {
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
    Flush();
  }
  void Flush() {
    for (;;) {
      const std::uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) break;
      out_.emplace_back(reinterpret_cast<const char*>(data), static_cast<std::size_t>(n));
      asio::async_write(*stream_, asio::buffer(out_.back()), [](error_code, std::size_t) {});
    }
  }

  std::map<std::int32_t, Reply> replies;
  std::vector<std::pair<std::string, std::string>> trailers;  // sent after each request body
  std::vector<std::int32_t> goaways;
  int pings = 0;
  bool eof = false;

 private:
  void Read() {
    stream_->async_read_some(asio::buffer(buf_), [this](error_code ec, std::size_t n) {
      if (ec) {
        eof = true;
        return;
      }
      nghttp2_session_mem_recv(session_, reinterpret_cast<const std::uint8_t*>(buf_), n);
      Flush();
      Read();
    });
  }

  std::unique_ptr<runtime::MemoryStream> stream_;
  nghttp2_session* session_ = nullptr;
  char buf_[16384];
  std::list<std::string> out_;
  std::list<std::pair<std::string, std::size_t>> bodies_;
};

class Http2Test : public ::testing::Test {
 protected:
  void Start() {
    ServerOptions options;
    options.http2 = true;
    options.max_body_bytes = 0;
    server_ = std::make_unique<Server>(io_, options, handler_);
    auto [server_end, client_end] = runtime::MemoryStream::Pair(io_.get_executor());
    server_->Serve(std::move(server_end));
    client_ = std::make_unique<Client>(std::move(client_end));
  }
  template <typename Pred>
  bool RunUntil(Pred pred, Duration limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (!pred() && std::chrono::steady_clock::now() < until) io_.run_for(10ms);
    return pred();
  }
  void TearDown() override {
    if (!server_) return;
    server_->Close();
    bool done = false;
    auto wait = [](Server* s, bool* d) -> Task<void> {
      co_await s->Wait();
      *d = true;
    };
    asio::co_spawn(io_, wait(server_.get(), &done), asio::detached);
    RunUntil([&] { return done; });
  }

  asio::io_context io_;
  TestHandler handler_{io_};
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(Http2Test, StreamsAreServedConcurrentlyWithAuthorityAsHost) {
  Start();
  const std::string body = "hello";
  const auto a = client_->Request("GET", "/a?x=1", nullptr, {{"te", "trailers"}});
  const auto b = client_->Request("POST", "/echo", &body);
  ASSERT_TRUE(RunUntil([&] { return client_->replies[a].closed && client_->replies[b].closed; }));
  EXPECT_EQ(client_->replies[a].status, 200);
  EXPECT_EQ(client_->replies[a].body, "GET /a?x=1 a.test");
  EXPECT_EQ(client_->replies[a].headers["x-served"], "yes");
  EXPECT_EQ(client_->replies[b].body, "hello");
  EXPECT_EQ(client_->replies[b].headers["content-length"], "5");
  // `te` is hop-by-hop, but `te: trailers` (the only one nghttp2 lets through) stays for an
  // HTTP/2 upstream: gRPC servers require it.
  EXPECT_EQ(handler_.saw_te, "trailers");
  EXPECT_EQ(handler_.opened, 1);
  EXPECT_EQ(server_->connection_count(), 1u);
}

TEST_F(Http2Test, BodiesPastTheWindowsStreamBothWays) {
  Start();
  std::string big(5 << 20, 'x');  // past the 256 KiB stream and 1 MiB connection windows
  for (std::size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i % 26);
  const auto id = client_->Request("POST", "/pieces", &big);
  ASSERT_TRUE(RunUntil([&] { return client_->replies[id].closed; }, 20s));
  EXPECT_EQ(client_->replies[id].status, 200);
  EXPECT_EQ(client_->replies[id].error, 0u);
  EXPECT_TRUE(client_->replies[id].body == big) << client_->replies[id].body.size();
}

TEST_F(Http2Test, AResetStreamCancelsItsHandler) {
  Start();
  const auto id = client_->Request("GET", "/hang");
  ASSERT_TRUE(RunUntil([&] { return handler_.hanging == 1; }));
  client_->Reset(id);
  ASSERT_TRUE(RunUntil([&] { return handler_.cancelled == 1; }));
  // The connection goes on.
  const auto next = client_->Request("GET", "/b");
  ASSERT_TRUE(RunUntil([&] { return client_->replies[next].closed; }));
  EXPECT_EQ(client_->replies[next].status, 200);
}

TEST_F(Http2Test, HostDifferentFromAuthorityIs400) {
  Start();
  const auto id = client_->Request("GET", "/a", nullptr, {{"host", "b.test"}});
  ASSERT_TRUE(RunUntil([&] { return client_->replies[id].closed; }));
  EXPECT_EQ(client_->replies[id].status, 400);
  EXPECT_EQ(handler_.calls, 0);
}

TEST_F(Http2Test, DrainWithoutStreamsEndsTheConnectionAfterThePing) {
  Start();
  const auto id = client_->Request("GET", "/a");
  ASSERT_TRUE(RunUntil([&] { return client_->replies[id].closed; }));
  io_.run_for(50ms);
  ASSERT_FALSE(client_->eof);
  server_->Drain();
  ASSERT_TRUE(RunUntil([&] { return client_->eof; }, 5s));  // notice, PING, final GOAWAY, close
  EXPECT_GE(client_->goaways.size(), 1u);
  EXPECT_EQ(client_->goaways[0], (1u << 31) - 1);
  EXPECT_TRUE(RunUntil([&] { return handler_.closed == 1; }));
}

TEST_F(Http2Test, DrainSendsANoticeAPingThenTheFinalGoaway) {
  Start();
  const auto id = client_->Request("GET", "/slow");
  ASSERT_TRUE(RunUntil([&] { return handler_.hanging == 1; }));
  server_->Drain();
  ASSERT_TRUE(RunUntil([&] { return client_->goaways.size() == 2; }))
      << client_->goaways.size() << " goaways, " << client_->pings << " pings";
  EXPECT_EQ(client_->goaways[0], (1u << 31) - 1);
  EXPECT_EQ(client_->pings, 1);
  EXPECT_EQ(client_->goaways[1], id);
  ASSERT_TRUE(RunUntil([&] { return client_->replies[id].closed; }));
  EXPECT_EQ(client_->replies[id].body, "slow");         // the stream in flight finished
  ASSERT_TRUE(RunUntil([&] { return client_->eof; }));  // no stream left: it closes
  EXPECT_TRUE(RunUntil([&] { return handler_.closed == 1; }));
}

TEST_F(Http2Test, TrailersBothWays) {
  Start();
  const std::string body = "hello";
  client_->trailers = {{"x-sum", "42"}, {"host", "evil"}};
  const auto id = client_->Request("POST", "/trailers", &body);
  ASSERT_TRUE(RunUntil([&] { return client_->replies[id].closed; }));
  const auto& reply = client_->replies[id];
  EXPECT_EQ(handler_.request_trailers, "x-sum=42;");  // host may not be a trailer
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, "abc");
  EXPECT_EQ(reply.headers.at("grpc-status"), "0");  // lowercase on the wire
  EXPECT_EQ(reply.headers.count("content-length"), 0u);
  EXPECT_EQ(reply.header_frames, 2);  // the head, then the trailers
  EXPECT_EQ(reply.error, 0u);
}

TEST_F(Http2Test, AnEmptyResponseIsOneHeadersFrame) {
  Start();
  const auto id = client_->Request("GET", "/empty");
  ASSERT_TRUE(RunUntil([&] { return client_->replies[id].closed; }));
  EXPECT_EQ(client_->replies[id].status, 200);
  EXPECT_EQ(client_->replies[id].header_frames, 1);
  EXPECT_EQ(client_->replies[id].data_frames, 0);  // END_STREAM came on the HEADERS
}

}  // namespace
}  // namespace ferry::server
