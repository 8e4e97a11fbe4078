#include "core/units.hpp"

#include <gtest/gtest.h>

namespace ferry {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ParseDuration, AcceptsConfigUnits) {
  EXPECT_EQ(*ParseDuration("250ms"), milliseconds(250));
  EXPECT_EQ(*ParseDuration("2s"), seconds(2));
  EXPECT_EQ(*ParseDuration("1m30s"), seconds(90));
  EXPECT_EQ(*ParseDuration("1.5s"), milliseconds(1500));
  EXPECT_EQ(*ParseDuration("0"), Duration::zero());
}

TEST(ParseDuration, RejectsMissingOrUnknownUnits) {
  EXPECT_FALSE(ParseDuration("250").has_value());
  EXPECT_FALSE(ParseDuration("2 s").has_value());
  EXPECT_FALSE(ParseDuration("2sec").has_value());
  EXPECT_FALSE(ParseDuration("").has_value());
  EXPECT_FALSE(ParseDuration("-1s").has_value());
  EXPECT_EQ(ParseDuration("x").error().code(), ErrorCode::kInvalidArgument);
}

TEST(ParseSize, BinaryAndDecimalUnits) {
  EXPECT_EQ(*ParseSize("64KiB"), 64u * 1024);
  EXPECT_EQ(*ParseSize("1MiB"), 1024u * 1024);
  EXPECT_EQ(*ParseSize("1MB"), 1000000u);
  EXPECT_EQ(*ParseSize("512"), 512u);
  EXPECT_FALSE(ParseSize("12XB").has_value());
  EXPECT_FALSE(ParseSize("KiB").has_value());
}

TEST(ParseRatio, PercentOrFraction) {
  EXPECT_DOUBLE_EQ(*ParseRatio("20%"), 0.2);
  EXPECT_DOUBLE_EQ(*ParseRatio("0.5"), 0.5);
  EXPECT_FALSE(ParseRatio("120%").has_value());
  EXPECT_FALSE(ParseRatio("abc").has_value());
}

TEST(FormatDuration, RoundTripsCommonValues) {
  EXPECT_EQ(FormatDuration(seconds(2)), "2s");
  EXPECT_EQ(FormatDuration(milliseconds(250)), "250ms");
  EXPECT_EQ(FormatDuration(seconds(90)), "90s");
  EXPECT_EQ(*ParseDuration(FormatDuration(milliseconds(1500))), milliseconds(1500));
}

TEST(ErrorTable, MapsCodesToStatuses) {
  EXPECT_EQ(Describe(ErrorCode::kDeadlineExceeded).http_status, 504);
  EXPECT_TRUE(Describe(ErrorCode::kUnavailable).retryable);
  EXPECT_FALSE(Describe(ErrorCode::kInvalidArgument).retryable);
  EXPECT_EQ(Describe(ErrorCode::kInternal).name, "internal");
}

}  // namespace
}  // namespace ferry
