#include "proxy/websocket.hpp"

#include <gtest/gtest.h>

namespace ferry::proxy {
namespace {

TEST(WebSocketAccept, MatchesTheRfcExample) {
  // RFC 6455 1.3's example handshake.
  EXPECT_EQ(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WebSocketAccept, DiffersPerKey) {
  EXPECT_NE(WebSocketAccept("dGhlIHNhbXBsZSBub25jZQ=="),
            WebSocketAccept("AAAAAAAAAAAAAAAAAAAAAA=="));
}

}  // namespace
}  // namespace ferry::proxy
