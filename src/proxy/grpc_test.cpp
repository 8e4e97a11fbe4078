#include "proxy/grpc.hpp"

#include <gtest/gtest.h>

#include "proxy/local_reply.hpp"
#include "server/exchange.hpp"

namespace ferry::proxy::grpc {
namespace {

using std::chrono::nanoseconds;

TEST(Grpc, ContentTypeSaysWhatIsGrpc) {
  for (const char* type : {"application/grpc", "application/grpc+proto", "Application/GRPC+json",
                           "application/grpc;charset=utf-8"}) {
    http::Headers h;
    h.Add("content-type", type);
    EXPECT_TRUE(IsGrpc(h)) << type;
  }
  for (const char* type : {"application/grpc-web", "application/grpc-web+proto", "application/json",
                           "application/grp"}) {
    http::Headers h;
    h.Add("content-type", type);
    EXPECT_FALSE(IsGrpc(h)) << type;
  }
  EXPECT_FALSE(IsGrpc(http::Headers()));
}

TEST(Grpc, TheStatusTable) {
  EXPECT_EQ(StatusFor(404, reply::kNoRoute), kUnimplemented);
  EXPECT_EQ(StatusFor(401, "jwt_missing"), kUnauthenticated);
  EXPECT_EQ(StatusFor(403, "forbidden"), kPermissionDenied);
  EXPECT_EQ(StatusFor(429, "rate_limited"), kResourceExhausted);
  EXPECT_EQ(StatusFor(413, reply::kBodyTooLarge), kResourceExhausted);
  EXPECT_EQ(StatusFor(504, reply::kUpstreamTimeout), kDeadlineExceeded);
  EXPECT_EQ(StatusFor(408, reply::kRequestTimeout), kDeadlineExceeded);
  EXPECT_EQ(StatusFor(503, reply::kCircuitOpen), kUnavailable);
  EXPECT_EQ(StatusFor(503, reply::kNoHealthyEndpoint), kUnavailable);
  EXPECT_EQ(StatusFor(502, reply::kUpstreamConnectFailed), kUnavailable);
  EXPECT_EQ(StatusFor(502, reply::kBadUpstreamResponse), kUnavailable);
  EXPECT_EQ(StatusFor(500, reply::kInternal), kInternal);
  EXPECT_EQ(StatusFor(400, reply::kBadRequest), kInternal);
  EXPECT_EQ(StatusFor(418, "teapot"), kUnknown);
}

TEST(Grpc, MessageIsPercentEncoded) {
  EXPECT_EQ(PercentEncode("no route for POST /a.B/C"), "no route for POST /a.B/C");
  EXPECT_EQ(PercentEncode("100% \xc3\xbc\n"), "100%25 %C3%BC%0A");
}

TEST(Grpc, TrailersOnlyHead) {
  LocalReply reply;
  MakeErrorReply(reply, 503, reply::kCircuitOpen, "open", "rid");
  reply.headers.Add("retry-after", "3");
  server::ResponseHead head;
  MakeTrailersOnlyHead(reply, "breaker open", "rid", head);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.headers.Get("content-type"), "application/grpc");
  EXPECT_EQ(head.headers.Get("grpc-status"), "14");
  EXPECT_EQ(head.headers.Get("grpc-message"), "breaker open");
  EXPECT_EQ(head.headers.Get("x-ferry-breaker"), "open");
  EXPECT_EQ(head.headers.Get("retry-after"), "3");
  EXPECT_EQ(head.headers.Get("x-request-id"), "rid");
}

TEST(Grpc, TimeoutIsParsedStrictly) {
  EXPECT_EQ(ParseTimeout("100m"), nanoseconds(100'000'000));
  EXPECT_EQ(ParseTimeout("1S"), nanoseconds(1'000'000'000));
  EXPECT_EQ(ParseTimeout("2M"), nanoseconds(120'000'000'000));
  EXPECT_EQ(ParseTimeout("5u"), nanoseconds(5'000));
  EXPECT_EQ(ParseTimeout("7n"), nanoseconds(7));
  EXPECT_EQ(ParseTimeout("99999999H"), nanoseconds(24LL * 3600 * 1'000'000'000));  // capped
  EXPECT_EQ(ParseTimeout("99999999m"), nanoseconds(24LL * 3600 * 1'000'000'000));
  for (const char* bad : {"", "m", "100", "123456789m", "1.5S", " 1S", "1s", "-1S", "1S "}) {
    EXPECT_FALSE(ParseTimeout(bad)) << bad;
  }
}

TEST(Grpc, TimeoutIsWrittenAsTheTimeLeft) {
  EXPECT_EQ(FormatTimeout(nanoseconds(1'500'000'000)), "1500000u");
  EXPECT_EQ(FormatTimeout(nanoseconds(1)), "1u");
  EXPECT_EQ(FormatTimeout(nanoseconds(0)), "1u");
  EXPECT_EQ(FormatTimeout(std::chrono::hours(2)), "7200000m");
  EXPECT_EQ(ParseTimeout(FormatTimeout(std::chrono::hours(24))), std::chrono::hours(24));
}

}  // namespace
}  // namespace ferry::proxy::grpc

namespace ferry::proxy::grpc {
namespace {

std::string Message(std::uint32_t length) {
  std::string out = {'\0', static_cast<char>(length >> 24), static_cast<char>(length >> 16),
                     static_cast<char>(length >> 8), static_cast<char>(length)};
  return out + std::string(length, 'm');
}

TEST(GrpcMessageMeter, FindsTheFirstMessageOverTheLimit) {
  MessageMeter meter(10);
  const std::string stream = Message(3) + Message(10) + Message(0) + Message(11) + Message(1);
  EXPECT_EQ(meter.Feed(stream), 8u + 15u + 5u);
  EXPECT_EQ(meter.declared(), 11u);
  EXPECT_EQ(meter.Feed("more"), 0u);  // it stays over
}

TEST(GrpcMessageMeter, FollowsPrefixesSplitAcrossPieces) {
  const std::string stream = Message(4) + Message(200);
  for (std::size_t cut = 1; cut < stream.size(); ++cut) {
    MessageMeter meter(100);
    const auto first = meter.Feed(std::string_view(stream).substr(0, cut));
    const auto second = meter.Feed(std::string_view(stream).substr(cut));
    // The long one's prefix is bytes 9..13 of the stream.
    if (cut <= 9) {
      EXPECT_FALSE(first) << cut;
      EXPECT_EQ(second, 9 - cut) << cut;
    } else if (cut < 14) {  // the prefix is split: it began in the earlier piece
      EXPECT_FALSE(first) << cut;
      EXPECT_EQ(second, 0u) << cut;
    } else {
      EXPECT_EQ(first, 9u) << cut;
    }
  }
  MessageMeter unlimited(0);
  EXPECT_FALSE(unlimited.Feed(Message(1000)));
}

}  // namespace
}  // namespace ferry::proxy::grpc
