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

// 1xx, 204 and 304 have no body whatever their framing headers say (RFC 9110 6.4.1, 8.6: a 304
// may carry the Content-Length of the representation). The bytes after the head are the next
// response on the connection.
TEST(Parser, NoBodyStatusesIgnoreFramingHeaders) {
  for (const std::string_view head :
       {"HTTP/1.1 304 Not Modified\r\nContent-Length: 120\r\n\r\n",
        "HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n",
        "HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n"}) {
    SCOPED_TRACE(head);
    Parser p(Parser::Kind::kResponse);
    const std::string input = std::string(head) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    auto n = p.Feed(input);
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, head.size());
    EXPECT_TRUE(p.message_done());
    EXPECT_EQ(p.body_bytes(), 0u);
    EXPECT_EQ(p.response().framing, BodyFraming::kNone);
    p.Reset();
    auto body = ParseAll(p, std::string_view(input).substr(*n));
    ASSERT_TRUE(body);
    EXPECT_EQ(p.response().status, 200);
    EXPECT_EQ(*body, "ok");
  }
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

// What a caller sees of one request parsed whole: the head, the body, or the error.
std::string Transcript(bool simple_heads, std::string_view input, bool* took_fast_path) {
  Parser p(Parser::Kind::kRequest, simple_heads);
  std::string out;
  for (int i = 0; i < 4 && !input.empty(); ++i) {
    p.Reset();
    const std::size_t head_end = input.find("\r\n\r\n");
    if (head_end == std::string_view::npos) break;
    auto n = p.Feed(input.substr(0, head_end + 4));
    if (took_fast_path != nullptr && i == 0) *took_fast_path = p.simple_head();
    if (!n) return out + "error: " + n.error().message();
    const Http1RequestHead& h = p.request();
    out += h.method + " " + h.target + " 1." + std::to_string(h.version_minor) + "\n";
    h.headers.ForEach([&out](const Headers::Field& f) {
      out.append(f.name).append("=").append(f.value).append("\n");
    });
    out += "framing=" + std::to_string(static_cast<int>(h.framing)) +
           " length=" + std::to_string(h.content_length) + " keep=" + std::to_string(h.keep_alive) +
           " continue=" + std::to_string(h.expect_continue) + "\n";
    input.remove_prefix(*n);
    auto body = ParseAll(p, input);
    if (!body) return out + "body error: " + body.error().message();
    out += "body=" + *body + "\n";
    input.remove_prefix(p.body_bytes());
  }
  return out;
}

TEST(Parser, SimpleHeadsTakeTheFastPathAndParseAsLlhttpDoes) {
  const std::string simple[] = {
      "POST /v1/queues/q/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
      "Content-Length: 5\r\n\r\nhello",
      "GET /a/b;c=d?e=%41&f=(1)*2,x:y@z HTTP/1.1\r\nhost: x\r\n\r\n",
      "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
      "GET / HTTP/1.0\r\n\r\n",
      "DELETE /x HTTP/1.1\r\nConnection: close\r\nX-Tab:\tv\ta\r\n\r\n",
      "PUT /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nab",
      "PATCH /x HTTP/1.1\r\ncontent-length: 0\r\n\r\n",
      "HEAD /x HTTP/1.1\r\nA:1\r\nB:   2\r\n\r\n",
      "OPTIONS /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\n\r\n",
  };
  const auto parses_as_llhttp_does = [](const std::string& input, bool expect_fast_path) {
    bool fast = !expect_fast_path;
    EXPECT_EQ(Transcript(true, input, &fast), Transcript(false, input, nullptr)) << input;
    EXPECT_EQ(fast, expect_fast_path) << input;
  };
  for (const std::string& input : simple) parses_as_llhttp_does(input, true);
  // Outside the subset: llhttp parses (or rejects) them, with the fast path on or off alike.
  const std::string others[] = {
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
      "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
      "GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
      "GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n",
      "GET / HTTP/1.1\r\nX-Empty:\r\nHost: x\r\n\r\n",
      "GET / HTTP/1.1\r\nX-Trailing: v \r\n\r\n",
      "GET / HTTP/1.1\r\nX-Obs: caf\xc3\xa9\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Name: v\r\n\r\n",
      "GET /a#frag HTTP/1.1\r\n\r\n",
      "GET http://example.com/ HTTP/1.1\r\n\r\n",
      "GET * HTTP/1.1\r\n\r\n",
      "CONNECT example.com:443 HTTP/1.1\r\n\r\n",
      "get / HTTP/1.1\r\n\r\n",
      "GET / HTTP/2.0\r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\nHost: x\r\n\r\n",
  };
  for (const std::string& input : others) parses_as_llhttp_does(input, false);
}

TEST(Parser, FastPathBodyComesInPieces) {
  Parser p(Parser::Kind::kRequest);
  const std::string head = "POST /q HTTP/1.1\r\nContent-Length: 6\r\n\r\n";
  ASSERT_EQ(p.Feed(head), head.size());
  ASSERT_TRUE(p.simple_head());
  EXPECT_FALSE(p.message_done());
  ASSERT_EQ(p.Feed("abc"), 3u);
  EXPECT_FALSE(p.message_done());
  ASSERT_EQ(p.Feed("defGET"), 3u);  // the pipelined bytes are left
  EXPECT_TRUE(p.message_done());
  EXPECT_EQ(p.body_bytes(), 6u);
  ASSERT_EQ(p.body_chunks().size(), 2u);
  EXPECT_EQ(p.body_chunks()[1], "def");
  // A body cut short by the peer is an error, as llhttp's is.
  Parser cut(Parser::Kind::kRequest);
  ASSERT_EQ(cut.Feed(head), head.size());
  ASSERT_EQ(cut.Feed("ab"), 2u);
  EXPECT_FALSE(cut.FinishOnEof());
}

TEST(Parser, ReleaseFreesTheHeadAndParsesTheNextMessage) {
  Parser p(Parser::Kind::kRequest);
  const std::string first =
      "GET /a HTTP/1.1\r\nHost: x\r\nX-Long: " + std::string(500, 'v') + "\r\n\r\n";
  ASSERT_TRUE(p.Feed(first));
  p.Release();  // a connection going idle
  EXPECT_TRUE(p.request().method.empty());
  EXPECT_EQ(p.request().headers.size(), 0u);
  EXPECT_FALSE(p.head_done());
  ASSERT_TRUE(p.Feed("POST /b HTTP/1.1\r\nContent-Length: 2\r\n\r\n"));
  EXPECT_EQ(p.request().target, "/b");
  EXPECT_EQ(p.request().content_length, 2u);
  EXPECT_FALSE(p.request().headers.Has("x-long"));
}

TEST(Parser, ResetRestoresEveryDefault) {
  for (bool simple : {true, false}) {
    Parser p(Parser::Kind::kRequest, simple);
    ASSERT_TRUE(p.Feed("PUT /a?q HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"));
    ASSERT_FALSE(p.request().keep_alive);
    p.Reset();
    const Http1RequestHead fresh;
    const Http1RequestHead& h = p.request();
    EXPECT_TRUE(h.method.empty() && h.target.empty());
    EXPECT_EQ(h.headers.size(), 0u);
    EXPECT_EQ(h.version_minor, fresh.version_minor);
    EXPECT_EQ(h.framing, fresh.framing);
    EXPECT_EQ(h.content_length, fresh.content_length);
    EXPECT_EQ(h.keep_alive, fresh.keep_alive);
    EXPECT_EQ(h.expect_continue, fresh.expect_continue);
  }
}

// Issue 11: Debian's llhttp lets a space in a name and an empty name through.
TEST(Parser, RefusesHeaderNamesThatAreNotTokens) {
  for (const char* in : {"GET / HTTP/1.1\r\nHost: x\r\nTransfer Encoding: chunked\r\n\r\n",
                         "GET / HTTP/1.1\r\nHost: x\r\n: x\r\n\r\n"}) {
    Parser p(Parser::Kind::kRequest);
    auto n = p.Feed(in);
    ASSERT_FALSE(n) << in;
    EXPECT_NE(n.error().message().find("not a token"), std::string::npos);
  }
  Parser r(Parser::Kind::kResponse);
  EXPECT_FALSE(r.Feed("HTTP/1.1 200 OK\r\nContent Length: 5\r\n\r\n"));
}

TEST(Parser, TabsAroundValuesAreWhiteSpace) {
  const std::string in =
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\tchunked\t\r\nX-A:\ta\tb \t\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n";
  Parser p(Parser::Kind::kRequest);
  p.HeadHasTabs();
  const std::size_t head = in.find("\r\n\r\n") + 4;
  auto n = p.Feed(std::string_view(in).substr(0, head));
  ASSERT_TRUE(n) << n.error().message();
  EXPECT_EQ(*n, head);
  EXPECT_EQ(p.request().framing, BodyFraming::kChunked);
  EXPECT_EQ(*p.request().headers.Get("x-a"), "a\tb");  // the tab inside the value stays
  auto body = ParseAll(p, std::string_view(in).substr(head));
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "abc");
}

TEST(Parser, ExpectIsAList) {
  for (const char* in : {"POST / HTTP/1.1\r\nHost: x\r\nExpect: foo, 100-continue\r\n"
                         "Content-Length: 1\r\n\r\n",
                         "POST / HTTP/1.1\r\nHost: x\r\nExpect: foo\r\nExpect: 100-continue\r\n"
                         "Content-Length: 1\r\n\r\n"}) {
    Parser p(Parser::Kind::kRequest);
    ASSERT_TRUE(p.Feed(in));
    EXPECT_TRUE(p.request().expect_continue) << in;
  }
}

}  // namespace
}  // namespace ferry::http

namespace ferry::http {
namespace {

TEST(ParserTrailers, ChunkedTrailersAreKeptApartFromTheHead) {
  for (Parser::Kind kind : {Parser::Kind::kRequest, Parser::Kind::kResponse}) {
    Parser p(kind);
    const std::string head =
        kind == Parser::Kind::kRequest
            ? "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            : "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    auto body = ParseAll(p, head +
                                "3\r\nabc\r\n0\r\nGrpc-Status: 0\r\nContent-Length: 9\r\n"
                                "Host: evil\r\nX-Sum:  42 \r\n\r\n");
    ASSERT_TRUE(body) << body.error().message();
    EXPECT_EQ(*body, "abc");
    ASSERT_TRUE(p.message_done());
    ASSERT_NE(p.trailers(), nullptr);
    EXPECT_EQ(p.trailers()->Get("grpc-status"), "0");
    EXPECT_EQ(p.trailers()->Get("x-sum"), "42");
    EXPECT_FALSE(p.trailers()->Has("content-length"));  // not a trailer: dropped
    EXPECT_FALSE(p.trailers()->Has("host"));
    const Headers& h = kind == Parser::Kind::kRequest ? p.request().headers : p.response().headers;
    EXPECT_FALSE(h.Has("grpc-status"));  // the head stays as it was
    p.Reset();
    EXPECT_EQ(p.trailers(), nullptr);
  }
}

TEST(ParserTrailers, NoTrailersIsNull) {
  Parser p(Parser::Kind::kRequest);
  ASSERT_TRUE(ParseAll(p,
                       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n"));
  EXPECT_TRUE(p.message_done());
  EXPECT_EQ(p.trailers(), nullptr);
}

TEST(ParserTrailers, TooManyTrailerBytesAreAnError) {
  Parser p(Parser::Kind::kResponse);
  std::string in = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
  for (int i = 0; i < 200; ++i)
    in += "x-t" + std::to_string(i) + ": " + std::string(100, 'v') + "\r\n";
  in += "\r\n";
  auto got = ParseAll(p, in);
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message().find("trailers exceed"), std::string::npos)
      << got.error().message();
}

}  // namespace
}  // namespace ferry::http
