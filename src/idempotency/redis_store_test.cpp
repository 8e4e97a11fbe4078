// Runs a real redis-server (Debian's, from scripts/install-deps) on 127.0.0.1, stopped by PID.
#include "idempotency/redis_store.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

namespace ferry::idempotency {
namespace {

namespace fs = std::filesystem;

std::uint16_t FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

class RedisStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists("/usr/bin/redis-server")) {
      GTEST_SKIP() << "LOUD SKIP: redis-server is not installed (scripts/install-deps)";
    }
    dir_ = fs::temp_directory_path() / ("ferry-redis-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    server_.host = "127.0.0.1";
    server_.port = FreePort();
    pid_ = ::fork();
    if (pid_ == 0) {
      const int null = ::open("/dev/null", O_WRONLY);  // (its log is not the test's)
      ::dup2(null, 1);
      ::dup2(null, 2);
      const std::string port = std::to_string(server_.port);
      ::execl("/usr/bin/redis-server", "redis-server", "--bind", "127.0.0.1", "--port",
              port.c_str(), "--save", "", "--appendonly", "no", "--dir", dir_.c_str(),
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    for (int i = 0; i < 250; ++i) {  // up to 5 s
      if (auto s = RedisStore::Open(server_)) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    FAIL() << "redis-server did not answer on port " << server_.port;
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  static Record Marker(std::string_view body, std::uint64_t token, std::int64_t now_ms) {
    Record r;
    r.fingerprint = Fingerprint("POST", "/pay", body);
    r.token = token;
    r.lease_until_ms = now_ms + 1000;
    r.expires_at_ms = now_ms + 60'000;
    return r;
  }
  static std::int64_t Now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  fs::path dir_;
  config::Address server_;
  pid_t pid_ = -1;
};

TEST_F(RedisStoreTest, TwoStoresShareKeys) {
  auto a = RedisStore::Open(server_);
  auto b = RedisStore::Open(server_);  // as two Ferry nodes would
  ASSERT_TRUE(a && b);
  const std::int64_t now = Now();
  EXPECT_EQ((*a)->Begin("k", Marker("x", 1, now), now)->outcome, Outcome::kStarted);
  EXPECT_EQ((*b)->Begin("k", Marker("x", 2, now), now)->outcome, Outcome::kInFlight);
  EXPECT_EQ((*b)->Begin("k", Marker("y", 2, now), now)->outcome, Outcome::kMismatch);
  EXPECT_EQ((*b)->Begin("k", Marker("x", 2, now), now + 1000)->outcome, Outcome::kOutcomeUnknown);

  Record done = Marker("x", 1, now);
  done.state = Record::State::kDone;
  done.response.status = 200;
  done.response.body = std::string("ok\0bin", 6);
  EXPECT_FALSE(*(*b)->Complete("k", [&] {
    Record r = done;
    r.token = 2;
    return r;
  }()));
  EXPECT_TRUE(*(*a)->Complete("k", done));
  auto replay = (*b)->Begin("k", Marker("x", 3, now), now);
  ASSERT_TRUE(replay);
  EXPECT_EQ(replay->outcome, Outcome::kReplay);
  EXPECT_EQ(replay->response.body, done.response.body);
}

TEST_F(RedisStoreTest, AbandonedMarkerLetsTheClientTryAgain) {
  auto s = RedisStore::Open(server_);
  ASSERT_TRUE(s);
  const std::int64_t now = Now();
  EXPECT_EQ((*s)->Begin("k", Marker("x", 1, now), now)->outcome, Outcome::kStarted);
  EXPECT_FALSE(*(*s)->Abandon("k", 7));
  EXPECT_TRUE(*(*s)->Abandon("k", 1));
  EXPECT_EQ((*s)->Begin("k", Marker("x", 2, now), now)->outcome, Outcome::kStarted);
}

TEST_F(RedisStoreTest, RedisExpiresRecords) {
  auto s = RedisStore::Open(server_);
  ASSERT_TRUE(s);
  const std::int64_t now = Now();
  Record r = Marker("x", 1, now);
  r.expires_at_ms = now + 200;
  EXPECT_EQ((*s)->Begin("k", r, now)->outcome, Outcome::kStarted);
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  EXPECT_EQ((*s)->Begin("k", Marker("x", 2, Now()), Now())->outcome, Outcome::kStarted);
}

TEST_F(RedisStoreTest, UnreachableServerIsUnavailable) {
  config::Address nobody{"127.0.0.1", FreePort()};
  auto s = RedisStore::Open(nobody);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(s.error().message().find(nobody.ToString()), std::string::npos);
}

TEST_F(RedisStoreTest, ServerGoneIsUnavailable) {
  auto s = RedisStore::Open(server_);
  ASSERT_TRUE(s);
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
  const std::int64_t now = Now();
  auto failed = (*s)->Begin("k", Marker("x", 1, now), now);
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace ferry::idempotency
