#include "proxy/local_reply.hpp"

#include <gtest/gtest.h>

#include "server/exchange.hpp"

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

// The head as the server gets it: "name: value" lines in order.
std::string Fields(const server::ResponseHead& head) {
  std::string out;
  head.headers.ForEach([&](const http::Headers::Field& f) {
    out.append(f.name).append(": ").append(f.value).append("\n");
  });
  return out;
}

TEST(LocalReply, HeadHasTheReplysFieldsAndTheRequestId) {
  LocalReply reply;
  reply.Reset(401, "unauthorized");
  reply.headers.Add("www-authenticate", "Bearer");
  reply.body = "who?";
  server::ResponseHead head;
  head.headers.Add("stale", "from the last reply");
  MakeReplyHead(reply, "rid", head);
  EXPECT_EQ(head.status, 401);
  EXPECT_EQ(Fields(head), "www-authenticate: Bearer\nx-request-id: rid\n");
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
  server::ResponseHead head;
  MakeReplyHead(reply, "rid", head);
  EXPECT_EQ(Fields(head), "etag: \"1\"\nx-request-id: rid\n");
}

TEST(LocalReply, ServerErrorsTakeTheProxyShape) {
  LocalReply reply;
  MakeErrorReply(reply, 431, "headers_too_large", "too big", "rid");
  EXPECT_EQ(reply.status, 431);
  EXPECT_EQ(reply.body, R"({"error":{"code":"headers_too_large","status":431,"message":"too big"},)"
                        R"("request_id":"rid"})"
                        "\n");
}

}  // namespace
}  // namespace ferry::proxy
