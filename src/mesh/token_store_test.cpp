#include "mesh/token_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace ferry::mesh {
namespace {

namespace fs = std::filesystem;

class TokenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (fs::temp_directory_path() /
            ("ferry_token_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name()))
               .string();
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::size_t FileCount() const {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_ + "/tokens")) ++n;
    return n;
  }

  std::string dir_;
};

TEST_F(TokenStoreTest, ATokenIsSpentOnce) {
  TokenStore store(dir_);
  auto token = store.Create("orders", std::chrono::hours(1));
  ASSERT_TRUE(token) << token.error().message();
  EXPECT_EQ(token->size(), 43u);
  ASSERT_TRUE(store.Spend(*token, "orders"));
  auto again = store.Spend(*token, "orders");
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(FileCount(), 0u);
}

TEST_F(TokenStoreTest, ASpentTokenStaysSpentForANewStore) {
  auto token = TokenStore(dir_).Create("orders", std::chrono::hours(1));
  ASSERT_TRUE(token);
  ASSERT_TRUE(TokenStore(dir_).Spend(*token, "orders"));
  EXPECT_FALSE(TokenStore(dir_).Spend(*token, "orders"));
}

TEST_F(TokenStoreTest, OnlyTheHashIsKeptWithMode0600) {
  TokenStore store(dir_);
  auto token = store.Create("orders", std::chrono::hours(1));
  ASSERT_TRUE(token);
  ASSERT_EQ(FileCount(), 1u);
  for (const auto& e : fs::directory_iterator(dir_ + "/tokens")) {
    EXPECT_EQ(e.path().filename().string().size(), 64u);  // hex SHA-256
    EXPECT_EQ(e.path().filename().string().find(*token), std::string::npos);
    std::ifstream in(e.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(text.find(*token), std::string::npos);
    EXPECT_NE(text.find("service orders"), std::string::npos);
    struct stat st {};
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
}

TEST_F(TokenStoreTest, AnotherServiceIsRefusedAndTheTokenStays) {
  TokenStore store(dir_);
  auto token = store.Create("orders", std::chrono::hours(1));
  ASSERT_TRUE(token);
  auto wrong = store.Spend(*token, "billing");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(store.Spend(*token, "orders"));
}

TEST_F(TokenStoreTest, AnExpiredTokenIsRefusedAndRemoved) {
  TokenStore store(dir_);
  const auto now = std::chrono::system_clock::now();
  auto token = store.Create("orders", std::chrono::seconds(30), now);
  ASSERT_TRUE(token);
  auto late = store.Spend(*token, "orders", now + std::chrono::seconds(31));
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(FileCount(), 0u);
}

TEST_F(TokenStoreTest, UnknownAndMalformedTokensAreNotFound) {
  TokenStore store(dir_);
  ASSERT_TRUE(store.Create("orders", std::chrono::hours(1)));
  for (std::string_view bad :
       {"", "short", "../../etc/passwd", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    auto r = store.Spend(bad, "orders");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kNotFound) << bad;
  }
  EXPECT_EQ(FileCount(), 1u);
}

TEST_F(TokenStoreTest, RemoveExpiredKeepsLiveTokens) {
  TokenStore store(dir_);
  const auto now = std::chrono::system_clock::now();
  ASSERT_TRUE(store.Create("a", std::chrono::seconds(10), now));
  auto live = store.Create("b", std::chrono::hours(1), now);
  ASSERT_TRUE(live);
  EXPECT_EQ(store.RemoveExpired(now + std::chrono::seconds(11)), 1u);
  EXPECT_EQ(FileCount(), 1u);
  EXPECT_TRUE(store.Spend(*live, "b", now + std::chrono::seconds(11)));
}

TEST_F(TokenStoreTest, BadServiceOrTtlIsRefused) {
  TokenStore store(dir_);
  EXPECT_FALSE(store.Create("no/slash", std::chrono::hours(1)));
  EXPECT_FALSE(store.Create("orders", std::chrono::milliseconds(10)));
}

}  // namespace
}  // namespace ferry::mesh
