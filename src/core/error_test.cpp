#include <gtest/gtest.h>

#include <set>
#include <string_view>

#include "core/clock.hpp"
#include "core/result.hpp"

namespace ferry {
namespace {

TEST(ErrorTable, EveryCodeHasItsOwnRow) {
  std::set<std::string_view> names;
  for (int i = 0; i <= static_cast<int>(ErrorCode::kTlsFailed); ++i) {
    const ErrorInfo& info = Describe(static_cast<ErrorCode>(i));
    EXPECT_TRUE(names.insert(info.name).second) << info.name;
    EXPECT_GE(info.http_status, 200);
    EXPECT_LE(info.http_status, 599);
  }
}

TEST(ErrorTable, ProxyFailuresKeepTheirStatuses) {
  EXPECT_EQ(Describe(ErrorCode::kConnectFailed).http_status, 502);
  EXPECT_TRUE(Describe(ErrorCode::kConnectFailed).retryable);  // nothing was sent
  EXPECT_EQ(Describe(ErrorCode::kRequestTimeout).http_status, 408);
  EXPECT_EQ(Describe(ErrorCode::kHeadersTooLarge).http_status, 431);
  EXPECT_EQ(Describe(ErrorCode::kDeadlineExceeded).http_status, 504);
  EXPECT_EQ(Describe(ErrorCode::kUnavailable).http_status, 503);
  EXPECT_EQ(Describe(ErrorCode::kUpstreamProtocol).http_status, 502);
  EXPECT_EQ(Describe(ErrorCode::kResourceExhausted).http_status, 413);
}

TEST(ErrorTable, BusStorageFailuresHaveTheirOwnStatuses) {
  EXPECT_EQ(Describe(ErrorCode::kNoSpace).http_status, 507);
  EXPECT_EQ(Describe(ErrorCode::kNoSpace).name, "insufficient_storage");
  EXPECT_EQ(Describe(ErrorCode::kFull).http_status, 429);
  EXPECT_EQ(Describe(ErrorCode::kFull).name, "full");
}

TEST(FakeClock, MovesOnlyWhenAdvanced) {
  FakeClock clock;
  const auto t0 = clock.now();
  const auto w0 = clock.wall();
  EXPECT_EQ(clock.now(), t0);
  clock.Advance(std::chrono::seconds(3));
  EXPECT_EQ(clock.now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(clock.wall() - w0, std::chrono::seconds(3));
}

}  // namespace
}  // namespace ferry
