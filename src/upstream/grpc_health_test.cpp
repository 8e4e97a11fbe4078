#include "upstream/grpc_health.hpp"

#include <gtest/gtest.h>

namespace ferry::upstream::grpc_health {
namespace {

using namespace std::string_literals;

TEST(GrpcHealth, CheckRequestIsOneFramedMessage) {
  EXPECT_EQ(CheckRequest(""), "\0\0\0\0\0"s);
  EXPECT_EQ(CheckRequest("a.B"),
            "\0\0\0\0\x05\x0a\x03"
            "a.B"s);
}

TEST(GrpcHealth, ServingNeedsStatusZeroAndServing) {
  http::Headers head;
  http::Headers ok;
  ok.Add("grpc-status", "0");
  const std::string serving = "\0\0\0\0\x02\x08\x01"s;
  const std::string not_serving = "\0\0\0\0\x02\x08\x02"s;
  EXPECT_TRUE(Serving(200, head, &ok, serving));
  EXPECT_FALSE(Serving(200, head, &ok, not_serving));
  EXPECT_FALSE(Serving(200, head, &ok, "\0\0\0\0\0"s));  // UNKNOWN
  EXPECT_FALSE(Serving(503, head, &ok, serving));
  EXPECT_FALSE(Serving(200, head, nullptr, serving));  // no grpc-status at all
  http::Headers failed;
  failed.Add("grpc-status", "5");
  EXPECT_FALSE(Serving(200, head, &failed, serving));
  http::Headers trailers_only;  // NOT_FOUND for an unknown service comes Trailers-Only
  trailers_only.Add("grpc-status", "5");
  EXPECT_FALSE(Serving(200, trailers_only, nullptr, ""));
  EXPECT_FALSE(Serving(200, head, &ok, "\0\0\0\0\x05\x08\x01"s));  // cut short
  // An unknown length-delimited field is skipped.
  EXPECT_TRUE(Serving(200, head, &ok, "\0\0\0\0\x05\x12\x01x\x08\x01"s));
}

}  // namespace
}  // namespace ferry::upstream::grpc_health
