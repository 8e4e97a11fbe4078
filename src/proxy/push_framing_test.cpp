#include "proxy/push_framing.hpp"

#include <gtest/gtest.h>

namespace ferry::proxy {
namespace {

TEST(PushFraming, SseEventSplitsEveryKindOfLineEndIntoDataLines) {
  EXPECT_EQ(SseEvent(7, {}, R"({"a":1})"), "id: 7\ndata: {\"a\":1}\n\n");
  EXPECT_EQ(SseEvent(8, "gap", "a\nb\r\nc\rd"),
            "id: 8\nevent: gap\ndata: a\ndata: b\ndata: c\ndata: d\n\n");
  EXPECT_EQ(SseEvent(9, {}, "x\n"), "id: 9\ndata: x\n\n");
  EXPECT_EQ(SseEvent(10, {}, ""), "id: 10\ndata: \n\n");
  EXPECT_EQ(SseEvent(11, {}, "a\n\nb"), "id: 11\ndata: a\ndata: \ndata: b\n\n");
}

TEST(PushFraming, WebSocketFramesUseTheShortestLength) {
  EXPECT_EQ(WebSocketFrame(WsOpcode::kText, "hi"), std::string("\x81\x02hi", 4));
  const std::string mid(300, 'x');
  const std::string f = WebSocketFrame(WsOpcode::kText, mid);
  ASSERT_EQ(f.size(), 4 + mid.size());
  EXPECT_EQ(static_cast<unsigned char>(f[1]), 126);
  EXPECT_EQ((static_cast<unsigned char>(f[2]) << 8) | static_cast<unsigned char>(f[3]), 300);
  const std::string big(70000, 'y');
  const std::string g = WebSocketFrame(WsOpcode::kText, big);
  ASSERT_EQ(g.size(), 10 + big.size());
  EXPECT_EQ(static_cast<unsigned char>(g[1]), 127);
  EXPECT_EQ(WebSocketClose(1001, "drain"), std::string("\x88\x07\x03\xe9"
                                                       "drain",
                                                       9));
  EXPECT_EQ(WebSocketFrame(WsOpcode::kPing, {}), std::string("\x89\x00", 2));
}

TEST(PushFraming, AnEventIsFramedOnceForEachProtocol) {
  const PushEvent e = MakePushEvent(42, R"({"x":1})");
  EXPECT_EQ(e.sequence, 42u);
  EXPECT_EQ(*e.sse, "id: 42\ndata: {\"x\":1}\n\n");
  EXPECT_EQ(e.ws->substr(2), R"({"type":"event","id":42,"data":{"x":1}})");
  const PushEvent gap = MakeGapEvent(3, 100);
  EXPECT_EQ(gap.sequence, 99u);
  EXPECT_EQ(*gap.sse, "id: 99\nevent: gap\ndata: {\"after\":3,\"first\":100}\n\n");
  EXPECT_EQ(gap.ws->substr(2), R"({"type":"gap","id":99,"after":3,"first":100})");
}

}  // namespace
}  // namespace ferry::proxy
