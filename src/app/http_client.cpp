#include "app/http_client.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>

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

// The exchange's byte pipe: the socket, or TLS over it. Each call waits at most until the
// deadline (SO_SNDTIMEO / SO_RCVTIMEO set to what is left before each call).
class Channel {
 public:
  enum class Status {
    kData,     // `n` bytes moved
    kClosed,   // the peer closed (plain: FIN or reset; TLS: close_notify)
    kTimeout,  // the deadline passed
    kError,    // `error` says why
  };
  struct Io {
    Status status = Status::kError;
    std::size_t n = 0;
    std::string error;
  };

  Channel(int fd, Clock::time_point deadline) : fd_(fd), deadline_(deadline) {}
  ~Channel() { SSL_free(ssl_); }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  // The TLS handshake, then the caller's check of the verified server.
  Result<void> StartTls(const TlsSettings& tls, const std::string& where) {
    ERR_clear_error();
    ssl_ = SSL_new(tls.context);
    if (ssl_ == nullptr || SSL_set_fd(ssl_, fd_) != 1) {
      return Fail(ErrorCode::kInternal, "SSL_new: " + TakeError());
    }
    if (!tls.server_name.empty()) SSL_set_tlsext_host_name(ssl_, tls.server_name.c_str());
    for (;;) {
      if (!SetTimeout(fd_, SO_RCVTIMEO, deadline_) || !SetTimeout(fd_, SO_SNDTIMEO, deadline_)) {
        return Fail(ErrorCode::kDeadlineExceeded, "TLS handshake with " + where + " timed out");
      }
      const int rc = SSL_connect(ssl_);
      if (rc == 1) break;
      const int error = SSL_get_error(ssl_, rc);
      if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) continue;
      std::string why;
      if (const long verify = SSL_get_verify_result(ssl_); verify != X509_V_OK) {  // NOLINT
        why = std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
        ERR_clear_error();
      } else {
        why = TakeError();
      }
      return Fail(ErrorCode::kTlsFailed, "TLS handshake with " + where + ": " + why);
    }
    if (tls.check_peer) {
      if (auto ok = tls.check_peer(ssl_); !ok) {
        return Fail(ErrorCode::kTlsFailed, where + ": " + ok.error().message());
      }
    }
    return Ok();
  }

  Io Write(std::string_view data) {
    if (!SetTimeout(fd_, SO_SNDTIMEO, deadline_)) return {Status::kTimeout};
    if (ssl_ != nullptr) return Tls(SSL_write(ssl_, data.data(), Size(data.size())));
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    return Plain(n, errno);
  }

  Io Read(char* buffer, std::size_t size) {
    if (!SetTimeout(fd_, SO_RCVTIMEO, deadline_)) return {Status::kTimeout};
    if (ssl_ != nullptr) return Tls(SSL_read(ssl_, buffer, Size(size)));
    const ssize_t n = ::recv(fd_, buffer, size, 0);
    const int error = errno;
    // A reset after the whole answer is as good as a close; the reader tells.
    if (n < 0 && error == ECONNRESET) return {Status::kClosed};
    return Plain(n, error);
  }

 private:
  static int Size(std::size_t n) { return static_cast<int>(std::min<std::size_t>(n, 1 << 20)); }

  static std::string TakeError() {
    const unsigned long code = ERR_get_error();  // NOLINT(google-runtime-int)
    ERR_clear_error();
    if (code == 0) return errno != 0 ? std::strerror(errno) : "the connection was closed";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
  }

  Io Plain(ssize_t n, int error) const {
    if (n > 0) return {Status::kData, static_cast<std::size_t>(n)};
    if (n == 0) return {Status::kClosed};
    if (error == EINTR) return {Status::kData, 0};
    if (error == EAGAIN || error == EWOULDBLOCK) {
      return {Clock::now() >= deadline_ ? Status::kTimeout : Status::kData, 0};
    }
    return {Status::kError, 0, std::strerror(error)};
  }

  Io Tls(int rc) {
    if (rc > 0) return {Status::kData, static_cast<std::size_t>(rc)};
    switch (SSL_get_error(ssl_, rc)) {
      case SSL_ERROR_WANT_READ:
      case SSL_ERROR_WANT_WRITE:  // the socket timed out (or a TLS record is not whole yet)
        return {Clock::now() >= deadline_ ? Status::kTimeout : Status::kData, 0};
      case SSL_ERROR_ZERO_RETURN:
        return {Status::kClosed};
      default:
        // An end without close_notify is an error here: a body framed by the close could
        // have been cut short by anyone on the path. Framed bodies end before it is read.
        return {Status::kError, 0, "TLS: " + TakeError()};
    }
  }

  int fd_;
  Clock::time_point deadline_;
  ssl_st* ssl_ = nullptr;
};

}  // namespace

std::string Url::HostHeader() const {
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string Url::ToString() const { return (https ? "https://" : "http://") + HostHeader() + path; }

Result<Url> ParseUrl(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidArgument,
                "invalid URL '" + std::string(text) + "': " + std::string(why));
  };
  std::string_view rest = text;
  Url url;
  if (const std::size_t scheme_end = rest.find("://"); scheme_end != std::string_view::npos) {
    const std::string scheme = Lower(rest.substr(0, scheme_end));
    if (scheme != "http" && scheme != "https") return bad("the scheme must be http or https");
    url.https = scheme == "https";
    url.port = url.https ? 443 : 80;
    rest.remove_prefix(scheme_end + 3);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return bad("a query or fragment is not allowed");
  }
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
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
                          std::chrono::milliseconds timeout, const TlsSettings* tls) {
  if (url.https && (tls == nullptr || tls->context == nullptr)) {
    return Fail(ErrorCode::kInvalidArgument, url.ToString() + ": https needs TLS settings");
  }
  const auto deadline = Clock::now() + timeout;
  auto socket = Connect(url, deadline);
  if (!socket) return tl::unexpected(socket.error());
  Channel channel(socket->fd(), deadline);
  if (url.https) {
    if (auto started = channel.StartTls(*tls, url.HostHeader()); !started) {
      return tl::unexpected(started.error());
    }
  }

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
    const Channel::Io io = channel.Write(pending);
    if (io.status == Channel::Status::kTimeout) return timed_out();
    if (io.status != Channel::Status::kData) {
      return Fail(ErrorCode::kConnectionClosed,
                  "sending to " + url.HostHeader() + ": " +
                      (io.error.empty() ? std::string("the connection was closed") : io.error));
    }
    pending.remove_prefix(io.n);
  }

  ResponseReader reader(request.method == "HEAD");
  std::string buffer(kReadPiece, '\0');
  for (;;) {
    const Channel::Io io = channel.Read(buffer.data(), buffer.size());
    if (io.status == Channel::Status::kTimeout) return timed_out();
    if (io.status == Channel::Status::kError) {
      return Fail(ErrorCode::kConnectionClosed,
                  "reading from " + url.HostHeader() + ": " + io.error);
    }
    if (io.status == Channel::Status::kData && io.n == 0) continue;
    const ResponseReader::State state = io.status == Channel::Status::kData
                                            ? reader.Read(std::string_view(buffer.data(), io.n))
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
