#include "http/serializer.hpp"

#include <gtest/gtest.h>

namespace ferry::http {
namespace {

TEST(Serializer, RemovesHopByHopAndConnectionListed) {
  Headers h;
  h.Add("Host", "x");
  h.Add("Connection", "keep-alive, X-Secret");
  h.Add("X-Secret", "1");
  h.Add("Keep-Alive", "timeout=5");
  h.Add("Transfer-Encoding", "chunked");
  h.Add("X-Kept", "2");
  RemoveHopByHop(h);
  std::string out;
  AppendRequestHead(out, "GET", "/", h);
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nHost: x\r\nX-Kept: 2\r\n\r\n");
}

TEST(Serializer, ResponseHeadUsesStandardReason) {
  Headers h;
  h.Add("content-length", "0");
  std::string out;
  AppendResponseHead(out, 404, "", h);
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
}

TEST(Serializer, ChunkSizeIsHex) {
  std::string out;
  AppendChunkSize(out, 4096);
  EXPECT_EQ(out, "1000\r\n");
}

TEST(Headers, GetIsCaseInsensitiveAndSetReplaces) {
  Headers h;
  h.Add("X-Request-Id", "a");
  h.Add("x-request-id", "b");
  EXPECT_EQ(*h.Get("X-REQUEST-ID"), "a");
  h.Set("x-request-id", "c");
  EXPECT_EQ(h.size(), 1u);
  EXPECT_EQ(*h.Get("x-request-id"), "c");
}

TEST(Headers, HasTokenSplitsLists) {
  EXPECT_TRUE(HasToken("keep-alive, Upgrade", "upgrade"));
  EXPECT_FALSE(HasToken("keep-alive-ish", "keep-alive"));
}

TEST(Serializer, EveryConnectionLineIsOneList) {
  Headers h;
  h.Add("Connection", "keep-alive");
  h.Add("X-A", "1");
  h.Add("connection", "X-A, X-B");
  h.Add("X-B", "2");
  h.Add("X-C", "3");
  RemoveHopByHop(h);
  std::string out;
  AppendRequestHead(out, "GET", "/", h);
  EXPECT_EQ(out, "GET / HTTP/1.1\r\nX-C: 3\r\n\r\n");
}

TEST(Serializer, ConnectionNeverRemovesFramingFields) {
  Headers h;
  h.Add("Connection", "content-length, host");
  h.Add("Content-Length", "5");
  h.Add("Host", "x");
  RemoveHopByHop(h);
  std::string out;
  AppendResponseHead(out, 200, "OK", h);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nHost: x\r\n\r\n");
  EXPECT_EQ(NamesFramingField("close, Content-Length"), "content-length");
  EXPECT_EQ(NamesFramingField("keep-alive, x-host"), "");
}

}  // namespace
}  // namespace ferry::http
