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

constexpr std::size_t kMaxChunkLine = 4096;  // a chunk-size line with its extensions
constexpr std::size_t kMaxTrailerBytes = 64 * 1024;
constexpr std::size_t kReadPiece = 64 * 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseDecimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool ParseHex(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 15) return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out, 16);
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

ResponseParser::State ResponseParser::Fail(std::string why) {
  error_ = std::move(why);
  return State::kError;
}

ResponseParser::State ResponseParser::ParseHead(std::string_view head) {
  response_ = HttpResponse();
  std::size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
  // "HTTP/1.1 200 OK"; the reason phrase may be empty or missing.
  if (line.size() < 12 || (line.substr(0, 9) != "HTTP/1.1 " && line.substr(0, 9) != "HTTP/1.0 ") ||
      (line.size() > 12 && line[12] != ' ')) {
    return Fail("not an HTTP/1.x status line: '" + std::string(line.substr(0, 80)) + "'");
  }
  std::uint64_t status = 0;
  if (!ParseDecimal(line.substr(9, 3), status) || status < 100 || status > 599) {
    return Fail("bad status code in '" + std::string(line.substr(0, 80)) + "'");
  }
  response_.status = static_cast<int>(status);

  bool have_length = false;
  std::string transfer_encoding;
  while (!head.empty()) {
    eol = head.find("\r\n");
    const std::string_view field = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    const std::size_t colon = field.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        field.substr(0, colon).find_first_of(" \t") != std::string_view::npos) {
      return Fail("bad header line '" + std::string(field.substr(0, 80)) + "'");
    }
    std::string name = Lower(field.substr(0, colon));
    const std::string_view value = Trim(field.substr(colon + 1));
    if (name == "content-length") {
      std::uint64_t length = 0;
      if (!ParseDecimal(value, length) || (have_length && length != content_length_)) {
        return Fail("bad or conflicting Content-Length");
      }
      have_length = true;
      content_length_ = length;
    } else if (name == "transfer-encoding") {
      transfer_encoding = Lower(value);
    }
    response_.headers.emplace_back(std::move(name), std::string(value));
  }

  if (head_request_ || status < 200 || status == 204 || status == 304) {
    framing_ = Framing::kNone;
  } else if (!transfer_encoding.empty()) {
    const std::size_t comma = transfer_encoding.rfind(',');
    const std::string_view last = Trim(
        std::string_view(transfer_encoding).substr(comma == std::string::npos ? 0 : comma + 1));
    framing_ = last == "chunked" ? Framing::kChunked : Framing::kUntilClose;
  } else {
    framing_ = have_length ? Framing::kLength : Framing::kUntilClose;
  }
  return State::kComplete;
}

ResponseParser::State ResponseParser::Parse(std::string_view received, bool eof) {
  while (!head_done_) {
    const std::size_t end = received.find("\r\n\r\n", scan_from_);
    if (end == std::string_view::npos) {
      if (received.size() - body_start_ > kMaxHeadBytes) return Fail("response head too large");
      scan_from_ = std::max(body_start_, received.size() >= 3 ? received.size() - 3 : 0);
      return State::kIncomplete;
    }
    if (ParseHead(received.substr(body_start_, end - body_start_)) == State::kError) {
      return State::kError;
    }
    body_start_ = end + 4;
    scan_from_ = body_start_;
    next_chunk_ = body_start_;
    if (response_.status == 101) return Fail("unexpected 101 Switching Protocols");
    head_done_ = response_.status >= 200;  // an interim 1xx head is followed by the real one
  }
  switch (framing_) {
    case Framing::kNone:
      return State::kComplete;
    case Framing::kLength:
      if (received.size() - body_start_ < content_length_) return State::kIncomplete;
      response_.body = std::string(received.substr(body_start_, content_length_));
      return State::kComplete;
    case Framing::kUntilClose:
      if (!eof) return State::kIncomplete;
      response_.body = std::string(received.substr(body_start_));
      return State::kComplete;
    case Framing::kChunked:
      return ParseChunks(received, eof);
  }
  return Fail("unreachable framing");
}

ResponseParser::State ResponseParser::ParseChunks(std::string_view received, bool /*eof*/) {
  for (;;) {
    const std::size_t eol = received.find("\r\n", next_chunk_);
    if (eol == std::string_view::npos) {
      if (received.size() - next_chunk_ > kMaxChunkLine) return Fail("chunk-size line too long");
      return State::kIncomplete;
    }
    if (eol - next_chunk_ > kMaxChunkLine) return Fail("chunk-size line too long");
    std::string_view size_text = received.substr(next_chunk_, eol - next_chunk_);
    size_text = Trim(size_text.substr(0, size_text.find(';')));  // extensions are ignored
    std::uint64_t size = 0;
    if (!ParseHex(size_text, size)) return Fail("bad chunk size");
    const std::size_t data = eol + 2;
    if (size == 0) {
      // The last chunk, then trailer fields up to an empty line; the trailers are dropped.
      if (received.substr(data, 2) == "\r\n") return State::kComplete;
      if (received.size() - data < 2) return State::kIncomplete;
      if (received.find("\r\n\r\n", data) != std::string_view::npos) return State::kComplete;
      if (received.size() - data > kMaxTrailerBytes) return Fail("trailer too large");
      return State::kIncomplete;
    }
    if (received.size() - data < size + 2) return State::kIncomplete;
    if (received.substr(data + size, 2) != "\r\n") return Fail("no CRLF after chunk data");
    response_.body.append(received.substr(data, size));
    next_chunk_ = data + size + 2;
  }
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

  ResponseParser parser(request.method == "HEAD");
  std::string in;
  bool eof = false;
  for (;;) {
    const ResponseParser::State state = parser.Parse(in, eof);
    if (state == ResponseParser::State::kComplete) return std::move(parser.response());
    if (state == ResponseParser::State::kError) {
      return Fail(ErrorCode::kUpstreamProtocol,
                  "bad response from " + url.HostHeader() + ": " + parser.error());
    }
    if (eof) {
      return Fail(ErrorCode::kConnectionClosed,
                  url.HostHeader() + " closed the connection before a complete answer");
    }
    if (!SetTimeout(fd, SO_RCVTIMEO, deadline)) return timed_out();
    const std::size_t old_size = in.size();
    in.resize(old_size + kReadPiece);
    const ssize_t n = ::recv(fd, in.data() + old_size, kReadPiece, 0);
    const int error = errno;
    in.resize(old_size + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && error == EINTR) continue;
    if (n < 0 && (error == EAGAIN || error == EWOULDBLOCK)) return timed_out();
    if (n < 0 && error != ECONNRESET) {
      return Fail(ErrorCode::kConnectionClosed,
                  "reading from " + url.HostHeader() + ": " + std::strerror(error));
    }
    eof = n <= 0;  // a reset after the whole answer is as good as a close
  }
}

}  // namespace ferry::app
