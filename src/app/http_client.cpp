#include "app/http_client.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace ferry::app {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadPiece = 64 * 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool ParseDecimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool IsUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

// The socket options take a relative timeout; a zero timeval would mean "forever", so the
// smallest wait is 1 ms. False when the deadline has passed.
bool SetTimeout(int fd, int option, Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::microseconds>(deadline - Clock::now());
  if (left.count() <= 0) return false;
  const auto micros = std::max<std::int64_t>(left.count(), 1000);
  const timeval tv{static_cast<time_t>(micros / 1'000'000),
                   static_cast<suseconds_t>(micros % 1'000'000)};
  return ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof tv) == 0;
}

class Socket {
 public:
  explicit Socket(int fd = -1) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// A non-blocking connect bounded by the deadline, then back to blocking mode for the
// SO_SNDTIMEO / SO_RCVTIMEO-bounded exchange.
Result<Socket> Connect(const Url& url, Clock::time_point deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(url.port);
  if (const int rc = ::getaddrinfo(url.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Fail(ErrorCode::kUnavailable,
                "cannot resolve " + url.host + ": " + std::string(::gai_strerror(rc)));
  }
  std::string last_error = "no address";
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    Socket socket(::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (socket.fd() < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int error = 0;
    if (::connect(socket.fd(), a->ai_addr, a->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        last_error = std::strerror(errno);
        continue;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      pollfd p{socket.fd(), POLLOUT, 0};
      const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
      if (ready == 0) {
        ::freeaddrinfo(found);
        return Fail(ErrorCode::kDeadlineExceeded, "timed out connecting to " + url.HostHeader());
      }
      socklen_t length = sizeof error;
      if (ready < 0 || ::getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
        error = errno;
      }
      if (error != 0) {
        last_error = std::strerror(error);
        continue;
      }
    }
    const int flags = ::fcntl(socket.fd(), F_GETFL);
    ::fcntl(socket.fd(), F_SETFL, flags & ~O_NONBLOCK);
    const int one = 1;
    ::setsockopt(socket.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::freeaddrinfo(found);
    return socket;
  }
  ::freeaddrinfo(found);
  return Fail(ErrorCode::kUnavailable, "cannot connect to " + url.HostHeader() + ": " + last_error);
}

}  // namespace

std::string Url::HostHeader() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::ToString() const { return "http://" + HostHeader() + path; }

Result<Url> ParseUrl(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid URL '" + std::string(text) + "': " + std::string(why));
  };
  std::string_view rest = text;
  if (const std::size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    const std::string scheme = Lower(rest.substr(0, scheme_end));
    if (scheme == "https") return bad("https is not supported; use http:// on loopback");
    if (scheme != "http") return bad("the scheme must be http");
    rest.remove_prefix(scheme_end + 3);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return bad("a query or fragment is not allowed");
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  Url url;
  if (slash != std::string_view::npos) {
    url.path = std::string(rest.substr(slash));
    while (!url.path.empty() && url.path.back() == '/') url.path.pop_back();
  }
  if (authority.find('@') != std::string_view::npos) return bad("user info is not supported");
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '[' in the host");
    url.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return bad("expected ':' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    const std::size_t colon = authority.find(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      if (authority.find(':', colon + 1) != std::string_view::npos) {
        return bad("an IPv6 address must be in brackets");
      }
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (url.host.empty()) return bad("no host");
  if (!port_text.empty()) {
    std::uint64_t port = 0;
    if (!ParseDecimal(port_text, port) || port == 0 || port > 65535) {
      return bad("the port must be a number from 1 to 65535");
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  return url;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (IsUnreserved(c)) {
      out += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

const std::string* HttpResponse::Find(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return &value;
  }
  return nullptr;
}

ResponseReader::ResponseReader(bool head_request) : head_request_(head_request) {
  if (head_request_) parser_.ExpectNoBody();
}

ResponseReader::State ResponseReader::Fail(ErrorCode code, std::string why) {
  error_ = Error(code, std::move(why));
  return state_ = State::kError;
}

ResponseReader::State ResponseReader::Read(std::string_view received) {
  if (state_ != State::kIncomplete) return state_;
  if (parser_.head_done()) return ReadBody(received);
  head_.append(received);
  return ReadHeads();
}

ResponseReader::State ResponseReader::ReadHeads() {
  for (;;) {
    switch (scanner_.Scan(head_)) {
      case http::HeadScanner::State::kIncomplete:
        return State::kIncomplete;
      case http::HeadScanner::State::kTooLarge:
        return Fail(ErrorCode::kUpstreamProtocol,
                    "response head over " + std::to_string(kHeadLimits.max_bytes) + " bytes");
      case http::HeadScanner::State::kTooManyFields:
        return Fail(
            ErrorCode::kUpstreamProtocol,
            "response head with over " + std::to_string(kHeadLimits.max_fields) + " header fields");
      case http::HeadScanner::State::kMalformed:
        return Fail(ErrorCode::kUpstreamProtocol, scanner_.error());
      case http::HeadScanner::State::kComplete:
        break;
    }
    // The parser is fed exactly one head, as the proxy feeds it (and the fuzz target drives it).
    if (scanner_.tabs()) parser_.HeadHasTabs();
    auto fed = parser_.Feed(std::string_view(head_).substr(0, scanner_.head_size()));
    if (!fed) return Fail(fed.error().code(), fed.error().message());
    if (!parser_.head_done()) return Fail(ErrorCode::kUpstreamProtocol, "unparsable head");
    const http::ResponseHead& head = parser_.response();
    if (head.status == 101) return Fail(ErrorCode::kUpstreamProtocol, "unexpected 101 upgrade");
    if (head.status >= 200) {
      response_.status = head.status;
      head.headers.ForEach([this](const http::Headers::Field& field) {
        response_.headers.emplace_back(Lower(field.name), std::string(field.value));
      });
      const std::string held = std::exchange(head_, std::string());
      return ReadBody(std::string_view(held).substr(*fed));  // body bytes that came with the head
    }
    // An interim answer (100 Continue, 103 Early Hints): the final one follows.
    head_.erase(0, *fed);
    parser_.Reset();
    scanner_.Reset();
    if (head_request_) parser_.ExpectNoBody();  // Reset forgets it
  }
}

ResponseReader::State ResponseReader::ReadBody(std::string_view data) {
  while (!data.empty() && !parser_.message_done()) {
    auto fed = parser_.Feed(data);
    if (!fed) return Fail(fed.error().code(), fed.error().message());
    for (const std::string_view chunk : parser_.body_chunks()) response_.body.append(chunk);
    parser_.body_chunks().clear();
    if (*fed == 0 && !parser_.message_done()) {  // a codec bug: fail rather than spin
      return Fail(ErrorCode::kInternal, "the HTTP parser made no progress in a body");
    }
    data.remove_prefix(*fed);
  }
  if (parser_.message_done()) state_ = State::kComplete;
  return state_;
}

ResponseReader::State ResponseReader::Finish() {
  if (state_ != State::kIncomplete) return state_;
  if (parser_.head_done() && parser_.FinishOnEof()) return state_ = State::kComplete;
  std::string where = head_.empty() ? "no head" : "in the head";
  if (parser_.head_done()) {
    where = "after " + std::to_string(parser_.body_bytes());
    if (parser_.response().framing == http::BodyFraming::kContentLength) {
      where += " of " + std::to_string(parser_.response().content_length);
    }
    where += " body bytes";
  }
  return Fail(ErrorCode::kConnectionClosed,
              "closed the connection before a complete answer (" + where + ")");
}

Result<HttpResponse> Send(const Url& url, const HttpRequest& request,
                          std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto socket = Connect(url, deadline);
  if (!socket) return tl::unexpected(socket.error());
  const int fd = socket->fd();

  std::string out = request.method + " " + url.path + request.target +
                    " HTTP/1.1\r\nhost: " + url.HostHeader() + "\r\n";
  for (const auto& [name, value] : request.headers) out += name + ": " + value + "\r\n";
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    out += "content-length: " + std::to_string(request.body.size()) + "\r\n";
  }
  out += "connection: close\r\n\r\n";
  out += request.body;

  const auto timed_out = [&] {
    return Fail(ErrorCode::kDeadlineExceeded, "no complete answer from " + url.HostHeader() +
                                                  " within " + std::to_string(timeout.count()) +
                                                  " ms");
  };
  std::string_view pending = out;
  while (!pending.empty()) {
    if (!SetTimeout(fd, SO_SNDTIMEO, deadline)) return timed_out();
    const ssize_t n = ::send(fd, pending.data(), pending.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return timed_out();
    if (n <= 0) {
      return Fail(ErrorCode::kConnectionClosed,
                  "sending to " + url.HostHeader() + ": " + std::strerror(errno));
    }
    pending.remove_prefix(static_cast<std::size_t>(n));
  }

  ResponseReader reader(request.method == "HEAD");
  std::string buffer(kReadPiece, '\0');
  for (;;) {
    if (!SetTimeout(fd, SO_RCVTIMEO, deadline)) return timed_out();
    const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
    const int error = errno;
    if (n < 0 && error == EINTR) continue;
    if (n < 0 && (error == EAGAIN || error == EWOULDBLOCK)) return timed_out();
    if (n < 0 && error != ECONNRESET) {
      return Fail(ErrorCode::kConnectionClosed,
                  "reading from " + url.HostHeader() + ": " + std::strerror(error));
    }
    // A reset after the whole answer is as good as a close.
    const ResponseReader::State state =
        n > 0 ? reader.Read(std::string_view(buffer.data(), static_cast<std::size_t>(n)))
              : reader.Finish();
    if (state == ResponseReader::State::kComplete) return std::move(reader.response());
    if (state == ResponseReader::State::kError) {
      const Error& why = reader.error();
      return Fail(why.code(), why.code() == ErrorCode::kConnectionClosed
                                  ? url.HostHeader() + " " + why.message()
                                  : "bad response from " + url.HostHeader() + ": " + why.message());
    }
  }
}

}  // namespace ferry::app
