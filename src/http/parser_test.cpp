#include "http/parser.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ferry::http {
namespace {

// Feeds the whole input, collecting body bytes; returns the parse error if any.
Result<std::string> ParseAll(Parser& p, std::string_view input) {
  std::string body;
  while (!input.empty() && !p.message_done()) {
    auto n = p.Feed(input);
    if (!n) return tl::unexpected(n.error());
    for (auto c : p.body_chunks()) body.append(c);
    p.body_chunks().clear();
    input.remove_prefix(*n);
  }
  return body;
}

TEST(Parser, StopsAfterHeadThenAfterMessage) {
  Parser p(Parser::Kind::kRequest);
  std::string in = "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET";
  auto n = p.Feed(in);
  ASSERT_TRUE(n);
  EXPECT_TRUE(p.head_done());
  EXPECT_FALSE(p.message_done());
  EXPECT_EQ(in.substr(*n, 5), "hello");
  EXPECT_EQ(p.request().method, "POST");
  EXPECT_EQ(p.request().path(), "/a");
  EXPECT_EQ(p.request().query(), "b=1");
  EXPECT_EQ(p.request().framing, BodyFraming::kContentLength);
  EXPECT_EQ(p.request().content_length, 5u);
  auto m = p.Feed(std::string_view(in).substr(*n));
  ASSERT_TRUE(m);
  EXPECT_TRUE(p.message_done());
  EXPECT_EQ(*m, 5u);  // the pipelined "GET" is left for the next message
  ASSERT_EQ(p.body_chunks().size(), 1u);
  EXPECT_EQ(p.body_chunks()[0], "hello");
}

TEST(Parser, DecodesChunkedBody) {
  Parser p(Parser::Kind::kRequest);
  auto body = ParseAll(p,
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n");
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "abcde");
  EXPECT_EQ(p.request().framing, BodyFraming::kChunked);
}

TEST(Parser, KeepsHeaderOrderAndCase) {
  Parser p(Parser::Kind::kRequest);
  ASSERT_TRUE(ParseAll(p, "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nx-a: 2\r\n\r\n"));
  std::vector<std::string> seen;
  p.request().headers.ForEach([&](const Headers::Field& f) {
    seen.push_back(std::string(f.name) + "=" + std::string(f.value));
  });
  EXPECT_EQ(seen, (std::vector<std::string>{"Host=x", "X-A=1", "x-a=2"}));
}

TEST(Parser, RejectsContentLengthWithTransferEncoding) {
  Parser p(Parser::Kind::kRequest);
  auto r = ParseAll(p,
                    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
}

TEST(Parser, RejectsTwoDifferentContentLengths) {
  Parser p(Parser::Kind::kRequest);
  EXPECT_FALSE(ParseAll(p,
                        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                        "Content-Length: 4\r\n\r\nabcd"));
}

TEST(Parser, RejectsChunkedNotLast) {
  Parser p(Parser::Kind::kRequest);
  EXPECT_FALSE(ParseAll(p,
                        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"
                        "0\r\n\r\n"));
}

TEST(Parser, RejectsBadChunkSize) {
  Parser p(Parser::Kind::kRequest);
  EXPECT_FALSE(ParseAll(p,
                        "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "zz\r\nabc\r\n0\r\n\r\n"));
}

TEST(Parser, ResponseUntilCloseCompletesOnEof) {
  Parser p(Parser::Kind::kResponse);
  auto body = ParseAll(p, "HTTP/1.1 200 OK\r\nX: y\r\n\r\nsome body");
  ASSERT_TRUE(body);
  EXPECT_EQ(p.response().framing, BodyFraming::kUntilClose);
  EXPECT_FALSE(p.message_done());
  EXPECT_TRUE(p.FinishOnEof());
  EXPECT_TRUE(p.message_done());
  EXPECT_EQ(*body, "some body");
}

TEST(Parser, ResponseToHeadHasNoBody) {
  Parser p(Parser::Kind::kResponse);
  p.ExpectNoBody();
  auto n = p.Feed("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
  ASSERT_TRUE(n);
  EXPECT_TRUE(p.head_done());
  EXPECT_TRUE(p.message_done());
}

TEST(Parser, ResetParsesNextMessage) {
  Parser p(Parser::Kind::kResponse);
  ASSERT_TRUE(ParseAll(p, "HTTP/1.1 204 No Content\r\n\r\n"));
  EXPECT_TRUE(p.message_done());
  p.Reset();
  ASSERT_TRUE(ParseAll(p, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
  EXPECT_EQ(p.response().status, 200);
}

TEST(Parser, CutResponseIsAnErrorOnEof) {
  Parser p(Parser::Kind::kResponse);
  ASSERT_TRUE(ParseAll(p, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_FALSE(p.FinishOnEof());
}

}  // namespace
}  // namespace ferry::http
