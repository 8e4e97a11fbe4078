#include "proxy/local_reply.hpp"

#include <gtest/gtest.h>

namespace ferry::proxy {
namespace {

TEST(LocalReply, ErrorRepliesTakeTheirStatusFromTheErrorTable) {
  LocalReply reply;
  MakeErrorReply(reply, Error(ErrorCode::kConnectFailed, "connect to x: refused"),
                 reply::kUpstreamConnectFailed, "rid");
  EXPECT_EQ(reply.status, 502);
  EXPECT_EQ(reply.code, "upstream_connect_failed");
  EXPECT_EQ(reply.body,
            R"({"error":{"code":"upstream_connect_failed","status":502,"message":"connect to x: )"
            R"(refused"},"request_id":"rid"})"
            "\n");
  MakeErrorReply(reply, Error(ErrorCode::kRequestTimeout, "slow"), reply::kRequestTimeout, "r");
  EXPECT_EQ(reply.status, 408);
  EXPECT_EQ(reply.headers.size(), 1u);  // the last reply's fields are gone
  MakeErrorReply(reply, Error(ErrorCode::kHeadersTooLarge, "big"), reply::kHeadersTooLarge, "r");
  EXPECT_EQ(reply.status, 431);
}

TEST(LocalReply, RendersHeadersAndBody) {
  LocalReply reply;
  reply.Reset(401, "unauthorized");
  reply.headers.Add("www-authenticate", "Bearer");
  reply.body = "who?";
  EXPECT_EQ(RenderLocalReply(reply, "rid", false),
            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer\r\ncontent-length: 4\r\n"
            "x-request-id: rid\r\n\r\nwho?");
  EXPECT_EQ(RenderLocalReply(reply, "rid", true, /*head_request=*/true),
            "HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Bearer\r\ncontent-length: 4\r\n"
            "x-request-id: rid\r\nconnection: close\r\n\r\n");
}

TEST(LocalReply, FramingAndHopByHopFieldsAreFerrys) {
  LocalReply reply;
  reply.Reset(200, "cached");
  reply.headers.Add("Content-Length", "999");
  reply.headers.Add("transfer-encoding", "chunked");
  reply.headers.Add("connection", "keep-alive");
  reply.headers.Add("x-request-id", "spoofed");
  reply.headers.Add("etag", "\"1\"");
  reply.body = "ok";
  EXPECT_EQ(RenderLocalReply(reply, "rid", false),
            "HTTP/1.1 200 OK\r\netag: \"1\"\r\ncontent-length: 2\r\nx-request-id: rid\r\n\r\nok");
}

TEST(LocalReply, NoBodyWith204Or304) {
  LocalReply reply;
  reply.Reset(204, "empty");
  reply.body = "ignored";
  EXPECT_EQ(RenderLocalReply(reply, "rid", false),
            "HTTP/1.1 204 No Content\r\nx-request-id: rid\r\n\r\n");
  reply.status = 304;
  EXPECT_EQ(RenderLocalReply(reply, "rid", false),
            "HTTP/1.1 304 Not Modified\r\nx-request-id: rid\r\n\r\n");
}

}  // namespace
}  // namespace ferry::proxy
