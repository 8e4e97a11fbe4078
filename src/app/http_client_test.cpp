#include "app/http_client.hpp"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <thread>

namespace ferry::app {
namespace {

using State = ResponseReader::State;

TEST(ParseUrl, TakesHostPortAndPath) {
  auto url = ParseUrl("http://127.0.0.1:8081/bus/");
  ASSERT_TRUE(url) << url.error().message();
  EXPECT_EQ(url->host, "127.0.0.1");
  EXPECT_EQ(url->port, 8081);
  EXPECT_EQ(url->path, "/bus");
  EXPECT_EQ(url->ToString(), "http://127.0.0.1:8081/bus");
}

TEST(ParseUrl, DefaultsPortTo80AndAllowsNoScheme) {
  auto url = ParseUrl("localhost");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "localhost");
  EXPECT_EQ(url->port, 80);
  EXPECT_EQ(url->path, "");
  EXPECT_EQ(ParseUrl("HTTP://h:1")->port, 1);
}

TEST(ParseUrl, TakesBracketedIpv6) {
  auto url = ParseUrl("http://[::1]:9000");
  ASSERT_TRUE(url);
  EXPECT_EQ(url->host, "::1");
  EXPECT_EQ(url->port, 9000);
  EXPECT_EQ(url->HostHeader(), "[::1]:9000");
}

TEST(ParseUrl, TakesHttpsWithPort443ByDefault) {
  auto url = ParseUrl("HTTPS://idp.example/keys");
  ASSERT_TRUE(url) << url.error().message();
  EXPECT_TRUE(url->https);
  EXPECT_EQ(url->port, 443);
  EXPECT_EQ(url->ToString(), "https://idp.example:443/keys");
  EXPECT_FALSE(ParseUrl("http://h")->https);
  EXPECT_EQ(ParseUrl("https://h:8443")->port, 8443);
}

TEST(Send, AnHttpsUrlWithoutTlsSettingsIsRefusedBeforeConnecting) {
  auto response = Send(*ParseUrl("https://127.0.0.1:1/"), HttpRequest{}, std::chrono::seconds(1));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kInvalidArgument);
}

TEST(ParseUrl, RejectsWhatItCannotUse) {
  for (const char* bad : {"ftp://h", "https://", "http://", "http://:80", "http://h:", "http://h:0",
                          "http://h:65536", "http://h:80x", "http://::1:80", "http://[::1",
                          "http://[::1]x", "http://u@h:80", "http://h/x?y=1", "http://h/#f"}) {
    auto url = ParseUrl(bad);
    EXPECT_FALSE(url) << bad;
    if (!url) {
      EXPECT_EQ(url.error().code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(url.error().message().find(bad), std::string::npos) << url.error().message();
    }
  }
}

TEST(PercentEncode, KeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(PercentEncode("order-1.v2_x~"), "order-1.v2_x~");
  EXPECT_EQ(PercentEncode("a b/c?d"), "a%20b%2Fc%3Fd");
  EXPECT_EQ(PercentEncode("\xC3\xA9"), "%C3%A9");
}

// Feeds `bytes` split at `at` (two pieces; the second may be empty); the state after the last.
State ReadSplit(ResponseReader& reader, std::string_view bytes, std::size_t at) {
  const State first = reader.Read(bytes.substr(0, at));
  return at == bytes.size() ? first : reader.Read(bytes.substr(at));
}

TEST(ResponseReader, ReadsContentLengthBodySplitAnywhere) {
  const std::string all = "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-A: b \r\n\r\nhello";
  for (std::size_t at = 0; at <= all.size(); ++at) {
    ResponseReader reader;
    ASSERT_EQ(ReadSplit(reader, all, at), State::kComplete) << at;
    EXPECT_EQ(reader.response().status, 201);
    EXPECT_EQ(reader.response().body, "hello") << at;
    ASSERT_NE(reader.response().Find("x-a"), nullptr);
    EXPECT_EQ(*reader.response().Find("x-a"), "b");
  }
}

TEST(ResponseReader, KeepsHeaderOrderWithLowercaseNames) {
  ResponseReader reader;
  ASSERT_EQ(reader.Read("HTTP/1.1 200 OK\r\nX-B: 1\r\nContent-Length: 0\r\nx-b: 2\r\n\r\n"),
            State::kComplete);
  const HeaderList expected = {{"x-b", "1"}, {"content-length", "0"}, {"x-b", "2"}};
  EXPECT_EQ(reader.response().headers, expected);
}

TEST(ResponseReader, DecodesChunkedBodyArrivingByteByByte) {
  const std::string all =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n";
  ResponseReader reader;
  for (std::size_t i = 0; i + 1 < all.size(); ++i) {
    ASSERT_EQ(reader.Read(std::string_view(all).substr(i, 1)), State::kIncomplete) << i;
  }
  ASSERT_EQ(reader.Read(std::string_view(all).substr(all.size() - 1)), State::kComplete);
  EXPECT_EQ(reader.response().body, "hello world");
  EXPECT_EQ(reader.response().Find("x-trailer"), nullptr);  // trailers are not headers
}

TEST(ResponseReader, DecodesChunkedBodySplitAnywhere) {
  const std::string all =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n";
  for (std::size_t at = 0; at <= all.size(); ++at) {
    ResponseReader reader;
    ASSERT_EQ(ReadSplit(reader, all, at), State::kComplete) << at;
    EXPECT_EQ(reader.response().body, "hello world") << at;
  }
}

TEST(ResponseReader, TabsAroundAValueAreWhiteSpace) {
  ResponseReader reader;
  ASSERT_EQ(reader.Read("HTTP/1.1 200 OK\r\nTransfer-Encoding:\tchunked\t\r\nX-A:\tb\t\r\n\r\n"
                        "5\r\nhello\r\n0\r\n\r\n"),
            State::kComplete)
      << reader.error().message();
  EXPECT_EQ(reader.response().body, "hello");
  ASSERT_NE(reader.response().Find("x-a"), nullptr);
  EXPECT_EQ(*reader.response().Find("x-a"), "b");
}

TEST(ResponseReader, ReadsUntilCloseWithoutFraming) {
  ResponseReader reader;
  EXPECT_EQ(reader.Read("HTTP/1.0 200 OK\r\n\r\nbo"), State::kIncomplete);
  EXPECT_EQ(reader.Read("dy"), State::kIncomplete);
  ASSERT_EQ(reader.Finish(), State::kComplete);
  EXPECT_EQ(reader.response().body, "body");
}

TEST(ResponseReader, NoBodyFor204AndHead) {
  ResponseReader no_content;
  EXPECT_EQ(no_content.Read("HTTP/1.1 204 No Content\r\n\r\n"), State::kComplete);
  ResponseReader head(/*head_request=*/true);
  EXPECT_EQ(head.Read("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"), State::kComplete);
  EXPECT_EQ(head.response().body, "");
}

TEST(ResponseReader, SkipsInterimResponsesSplitAnywhere) {
  const std::string all =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: yes\r\n\r\nok";
  for (std::size_t at = 0; at <= all.size(); ++at) {
    ResponseReader reader;
    ASSERT_EQ(ReadSplit(reader, all, at), State::kComplete) << at;
    EXPECT_EQ(reader.response().status, 200);
    EXPECT_EQ(reader.response().body, "ok");
    const HeaderList expected = {{"content-length", "2"}, {"x-final", "yes"}};
    EXPECT_EQ(reader.response().headers, expected) << at;  // none of the interim heads'
  }
}

TEST(ResponseReader, AnswerToHeadAfterAnInterimOneHasNoBody) {
  ResponseReader reader(/*head_request=*/true);
  ASSERT_EQ(
      reader.Read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"),
      State::kComplete);
  EXPECT_EQ(reader.response().status, 200);
  EXPECT_EQ(reader.response().body, "");
}

TEST(ResponseReader, IgnoresBytesAfterTheResponse) {
  ResponseReader reader;
  ASSERT_EQ(reader.Read("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500"),
            State::kComplete);
  EXPECT_EQ(reader.Read("more"), State::kComplete);
  EXPECT_EQ(reader.response().status, 200);
  EXPECT_EQ(reader.response().body, "ok");
}

TEST(ResponseReader, RejectsMalformedResponses) {
  for (const char* bad : {
           "SSH-2.0-OpenSSH\r\n\r\n",
           "HTTP/1.1 2000 OK\r\n\r\n",
           "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
           "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",                  // bare LF
           "HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 0\r\n\r\n",     // bare CR
           "HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n",  // obsolete folding
           "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
       }) {
    ResponseReader reader;
    EXPECT_EQ(reader.Read(bad), State::kError) << bad;
    EXPECT_EQ(reader.error().code(), ErrorCode::kUpstreamProtocol) << bad;
    EXPECT_FALSE(reader.error().message().empty()) << bad;
    EXPECT_EQ(reader.Finish(), State::kError) << bad;  // and it stays so
  }
}

TEST(ResponseReader, RejectsAnOverlongHeadBeforeItsEnd) {
  ResponseReader reader;
  ASSERT_EQ(reader.Read("HTTP/1.1 200 OK\r\nX: "), State::kIncomplete);
  const std::string piece(4096, 'a');
  State state = State::kIncomplete;
  std::size_t fed = 0;
  while (state == State::kIncomplete && fed < 2 * ResponseReader::kHeadLimits.max_bytes) {
    state = reader.Read(piece);
    fed += piece.size();
  }
  ASSERT_EQ(state, State::kError);
  EXPECT_LE(fed, ResponseReader::kHeadLimits.max_bytes + piece.size());
  EXPECT_EQ(reader.error().code(), ErrorCode::kUpstreamProtocol);
  EXPECT_EQ(reader.error().message(), "response head over 65536 bytes");
}

TEST(ResponseReader, RejectsAHeadWithTooManyFields) {
  std::string head = "HTTP/1.1 200 OK\r\n";
  for (std::uint32_t i = 0; i <= ResponseReader::kHeadLimits.max_fields; ++i) head += "X: y\r\n";
  head += "Content-Length: 0\r\n\r\n";
  ResponseReader reader;
  ASSERT_EQ(reader.Read(head), State::kError);
  EXPECT_EQ(reader.error().code(), ErrorCode::kUpstreamProtocol);
  EXPECT_EQ(reader.error().message(), "response head with over 256 header fields");
}

TEST(ResponseReader, SaysWhereAnAnswerWasCutShort) {
  const struct {
    const char* bytes;
    const char* where;
  } cuts[] = {
      {"", "(no head)"},
      {"HTTP/1.1 200 OK\r\nContent-Le", "(in the head)"},
      {"HTTP/1.1 100 Continue\r\n\r\n", "(no head)"},
      {"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", "(after 3 of 10 body bytes)"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
       "(after 5 body bytes)"},
      {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "(after 3 body bytes)"},
  };
  for (const auto& cut : cuts) {
    ResponseReader reader;
    ASSERT_EQ(reader.Read(cut.bytes), State::kIncomplete) << cut.bytes;
    ASSERT_EQ(reader.Finish(), State::kError) << cut.bytes;
    EXPECT_EQ(reader.error().code(), ErrorCode::kConnectionClosed);
    EXPECT_EQ(reader.error().message(),
              std::string("closed the connection before a complete answer ") + cut.where);
  }
}

// A one-connection server on a loopback port chosen by the kernel; `serve` gets the accepted
// socket and owns it until it returns.
class OneShotServer {
 public:
  explicit OneShotServer(std::function<void(int)> serve) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof addr;
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(listener_, 4), 0);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, serve = std::move(serve)] {
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd >= 0) {
        serve(fd);
        ::close(fd);
      }
    });
  }
  ~OneShotServer() {
    ::shutdown(listener_, SHUT_RDWR);  // unblocks accept if no client came
    thread_.join();
    ::close(listener_);
  }
  Url url() const { return Url{"127.0.0.1", port_, ""}; }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

std::string ReadRequest(int fd) {
  std::string in;
  char buf[4096];
  while (in.find("\r\n\r\n") == std::string::npos) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<std::size_t>(n));
  }
  return in;
}

TEST(Send, SendsTheRequestAndReadsTheAnswer) {
  std::string seen;
  {
    OneShotServer server([&seen](int fd) {
      seen = ReadRequest(fd);
      const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
    });
    Url url = server.url();
    url.path = "/base";
    HttpRequest request;
    request.method = "POST";
    request.target = "/x?y=1";
    request.headers.emplace_back("ce-id", "7");
    request.body = "data";
    auto response = Send(url, request, std::chrono::seconds(5));
    ASSERT_TRUE(response) << response.error().message();
    EXPECT_EQ(response->status, 200);
    EXPECT_EQ(response->body, "ok");
  }
  EXPECT_EQ(seen.rfind("POST /base/x?y=1 HTTP/1.1\r\n", 0), 0u) << seen;
  EXPECT_NE(seen.find("\r\nce-id: 7\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\r\ncontent-length: 4\r\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("\r\nconnection: close\r\n"), std::string::npos) << seen;
}

TEST(Send, GivesUpAtTheDeadlineWhenNoAnswerComes) {
  OneShotServer server([](int fd) {
    ReadRequest(fd);
    char byte;
    ::recv(fd, &byte, 1, 0);  // until the client gives up and closes
  });
  const auto start = std::chrono::steady_clock::now();
  auto response = Send(server.url(), HttpRequest{}, std::chrono::milliseconds(200));
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_GE(took, std::chrono::milliseconds(190));
  EXPECT_LT(took, std::chrono::seconds(3));
}

TEST(Send, ReportsAnAnswerCutShort) {
  OneShotServer server([](int fd) {
    ReadRequest(fd);
    const std::string answer = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
  });
  auto response = Send(server.url(), HttpRequest{}, std::chrono::seconds(5));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kConnectionClosed);
  EXPECT_EQ(response.error().message(),
            server.url().HostHeader() +
                " closed the connection before a complete answer (after 5 of 10 body bytes)");
}

TEST(Send, ReadsAChunkedAnswerSentByteByByte) {
  OneShotServer server([](int fd) {
    ReadRequest(fd);
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    const std::string answer =
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    for (const char byte : answer) ::send(fd, &byte, 1, MSG_NOSIGNAL);
  });
  auto response = Send(server.url(), HttpRequest{}, std::chrono::seconds(5));
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "abcde");
}

TEST(Send, ReportsAMalformedAnswer) {
  OneShotServer server([](int fd) {
    ReadRequest(fd);
    const std::string answer = "SSH-2.0-OpenSSH_9.2\r\n\r\n";
    ::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
  });
  auto response = Send(server.url(), HttpRequest{}, std::chrono::seconds(5));
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kUpstreamProtocol);
  EXPECT_EQ(
      response.error().message().rfind(
          "bad response from " + server.url().HostHeader() + ": malformed HTTP response: ", 0),
      0u)
      << response.error().message();
}

TEST(Send, ReportsARefusedConnection) {
  // A bound socket that does not listen: connecting to its port is refused, and nobody else
  // can take the port while it is held.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  auto response =
      Send(Url{"127.0.0.1", ntohs(addr.sin_port), ""}, HttpRequest{}, std::chrono::seconds(5));
  ::close(fd);
  ASSERT_FALSE(response);
  EXPECT_EQ(response.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(response.error().message().find("refused"), std::string::npos)
      << response.error().message();
}

}  // namespace
}  // namespace ferry::app
