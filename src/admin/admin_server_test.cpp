#include "admin/admin_server.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

namespace ferry::admin {
namespace {

using namespace std::chrono_literals;

std::map<std::string, AdminHandler> Routes() {
  std::map<std::string, AdminHandler> routes;
  routes["/live"] = [] { return AdminResponse{200, "application/json", "{\"live\":true}\n"}; };
  routes["/metrics"] = [] { return AdminResponse{200, "text/plain", "ferry_up 1\n"}; };
  routes["/things"] = [] { return AdminResponse{200, "application/json", "{}\n"}; };
  return routes;
}

// Echoes what a write got.
std::map<std::string, AdminWriteHandler> WriteRoutes() {
  std::map<std::string, AdminWriteHandler> routes;
  routes["/things/"] = [](const AdminRequest& r) {
    return AdminResponse{200, "text/plain", fmt::format("{} {} [{}]", r.method, r.path, r.body)};
  };
  return routes;
}

TEST(AdminHandle, AnswersAKnownPath) {
  asio::io_context io;
  AdminServer admin(io, Routes());
  const AdminResponse r = admin.Handle("GET", "/live");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "{\"live\":true}\n");
}

TEST(AdminHandle, UnknownPathIs404InTheErrorShape) {
  asio::io_context io;
  AdminServer admin(io, Routes());
  const AdminResponse r = admin.Handle("GET", "/nope\"");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.body,
            R"({"error":{"code":"not_found","status":404,"message":"no admin endpoint /nope\""}})"
            "\n");
}

TEST(AdminHandle, OtherMethodsThanGetAndHeadAre405) {
  asio::io_context io;
  AdminServer admin(io, Routes());
  EXPECT_EQ(admin.Handle("POST", "/live").status, 405);
  EXPECT_EQ(admin.Handle("HEAD", "/live").status, 200);
}

TEST(AdminHandle, APostUnderAWritePrefixGoesToItsHandlerWithTheBody) {
  asio::io_context io;
  AdminServer admin(io, Routes(), WriteRoutes());
  const AdminResponse r = admin.Handle("POST", "/things/a", "{}");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "POST /things/a [{}]");
  EXPECT_EQ(admin.Handle("GET", "/things/a").status, 405);
  EXPECT_EQ(admin.Handle("PUT", "/things/a").status, 405);
  EXPECT_EQ(admin.Handle("POST", "/things").status, 405);  // the GET route
  EXPECT_EQ(admin.Handle("GET", "/things").status, 200);
  EXPECT_EQ(admin.Handle("POST", "/other/a").status, 404);
}

// Over an in-memory connection: what the server writes for the admin routes.
class AdminOverStream : public ::testing::Test {
 protected:
  AdminOverStream() : admin_(io_, Routes(), WriteRoutes()) {
    auto [server_end, client_end] = runtime::MemoryStream::Pair(io_.get_executor());
    admin_.ServeConnection(std::move(server_end));
    client_ = std::move(client_end);
    Collect();
  }
  ~AdminOverStream() override { admin_.Stop(); }
  void Send(std::string bytes) {
    sent_ = std::move(bytes);
    asio::async_write(*client_, asio::buffer(sent_), [](error_code, std::size_t) {});
  }
  void Collect() {
    client_->async_read_some(asio::buffer(buf_), [this](error_code ec, std::size_t n) {
      if (ec) {
        eof_ = true;
        return;
      }
      received_.append(buf_, n);
      Collect();
    });
  }
  template <typename Pred>
  bool RunUntil(Pred done) {
    const auto until = std::chrono::steady_clock::now() + 2s;
    while (!done() && std::chrono::steady_clock::now() < until) {
      io_.restart();
      io_.run_for(2ms);
    }
    return done();
  }

  asio::io_context io_;
  AdminServer admin_;
  std::unique_ptr<runtime::MemoryStream> client_;
  std::string sent_;
  std::string received_;
  bool eof_ = false;
  char buf_[4096];
};

TEST_F(AdminOverStream, GetIsAnsweredWithNoStoreAndTheConnectionKept) {
  Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("ferry_up 1\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << received_;
  EXPECT_NE(received_.find("content-type: text/plain\r\n"), std::string::npos);
  EXPECT_NE(received_.find("cache-control: no-store\r\n"), std::string::npos);
  EXPECT_NE(received_.find("content-length: 11\r\n"), std::string::npos);
  EXPECT_FALSE(eof_);
}

TEST_F(AdminOverStream, HeadHasTheLengthButNoBody) {
  Send("HEAD /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return eof_; }));
  EXPECT_NE(received_.find("content-length: 14\r\n"), std::string::npos) << received_;
  EXPECT_EQ(received_.substr(received_.find("\r\n\r\n") + 4), "");
}

TEST_F(AdminOverStream, APostBodyReachesTheWriteHandler) {
  Send("POST /things/x HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\n{\"mode\":\"open\"}");
  ASSERT_TRUE(RunUntil([&] { return received_.find("]") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 200 OK\r\n", 0), 0u) << received_;
  EXPECT_NE(received_.find("POST /things/x [{\"mode\":\"open\"}]"), std::string::npos) << received_;
}

TEST_F(AdminOverStream, AnOversizedHeadGets431) {
  Send("GET /live HTTP/1.1\r\nHost: x\r\nX: " + std::string(20000, 'a') + "\r\n\r\n");
  ASSERT_TRUE(RunUntil([&] { return received_.find("}\n") != std::string::npos; }));
  EXPECT_EQ(received_.rfind("HTTP/1.1 431 ", 0), 0u) << received_.substr(0, 200);
}

}  // namespace
}  // namespace ferry::admin
