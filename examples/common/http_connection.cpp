#include "common/http_connection.hpp"

#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ferry::examples {
namespace {

constexpr std::size_t kMaxChunkLine = 4096;

bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

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

// True if the comma-separated list `value` holds `token` (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    const std::string_view item = Trim(value.substr(0, comma));
    if (Lower(item) == token) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// The last comma-separated item of `value`, lowercased.
std::string LastToken(std::string_view value) {
  const std::size_t comma = value.rfind(',');
  return Lower(Trim(comma == std::string_view::npos ? value : value.substr(comma + 1)));
}

bool ParseDecimal(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 18) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

bool ParseHex(std::string_view s, std::uint64_t& out) {
  if (s.empty() || s.size() > 15) return false;
  out = 0;
  for (char c : s) {
    int digit = 0;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      return false;
    }
    out = out * 16 + static_cast<std::uint64_t>(digit);
  }
  return true;
}

// Parses the head (request line and header lines, without the final empty line).
// Strict where leniency would let two parsers disagree on framing.
bool ParseHead(std::string_view head, Request& request) {
  for (std::size_t i = 0; i < head.size(); ++i) {
    const bool bare_cr = head[i] == '\r' && (i + 1 == head.size() || head[i + 1] != '\n');
    const bool bare_lf = head[i] == '\n' && (i == 0 || head[i - 1] != '\r');
    if (bare_cr || bare_lf || head[i] == '\0') return false;
  }
  std::size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  head = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);

  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == sp2 || sp1 == 0) return false;
  request.method = std::string(line.substr(0, sp1));
  request.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  const std::string_view version = line.substr(sp2 + 1);
  if (request.target.empty() || request.target.find(' ') != std::string::npos) return false;
  for (char c : request.method) {
    if (!IsTokenChar(c)) return false;
  }
  if (version == "HTTP/1.1") {
    request.version_minor = 1;
  } else if (version == "HTTP/1.0") {
    request.version_minor = 0;
  } else {
    return false;
  }

  bool have_length = false;
  std::string transfer_encoding;
  std::string connection;
  while (!head.empty()) {
    eol = head.find("\r\n");
    const std::string_view header = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view{} : head.substr(eol + 2);
    const std::size_t colon = header.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;  // also obs-fold lines
    const std::string_view name = header.substr(0, colon);
    for (char c : name) {
      if (!IsTokenChar(c)) return false;  // whitespace before the colon, among others
    }
    std::string lower = Lower(name);
    const std::string_view value = Trim(header.substr(colon + 1));
    if (lower == "content-length") {
      std::uint64_t length = 0;
      if (!ParseDecimal(value, length)) return false;
      if (have_length && length != request.content_length) return false;
      have_length = true;
      request.content_length = length;
    } else if (lower == "transfer-encoding") {
      transfer_encoding += transfer_encoding.empty() ? "" : ",";
      transfer_encoding += value;
    } else if (lower == "connection") {
      connection += connection.empty() ? "" : ",";
      connection += value;
    } else if (lower == "expect") {
      request.expect_continue = Lower(value) == "100-continue";
    }
    request.headers.emplace_back(std::move(lower), std::string(value));
  }

  if (!transfer_encoding.empty()) {
    // Both framings, or a final coding other than chunked, cannot be read unambiguously.
    if (have_length || LastToken(transfer_encoding) != "chunked" || request.version_minor == 0) {
      return false;
    }
    request.chunked = true;
    request.content_length = 0;
  }
  if (request.version_minor == 1) {
    request.keep_alive = !HasToken(connection, "close");
  } else {
    request.keep_alive = HasToken(connection, "keep-alive");
  }
  return true;
}

}  // namespace

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Content Too Large";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Status";
  }
}

const std::string* Request::Find(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return &value;
  }
  return nullptr;
}

Connection::Connection(int fd) : fd_(fd), buffer_(kBufferSize) {}

Connection::~Connection() {
  // Lingering close: a peer that is still sending when we close would get a reset, which can
  // destroy our last response in its receive buffer. Half-close, drain briefly, then close.
  ::shutdown(fd_, SHUT_WR);
  const timeval linger{0, 200 * 1000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &linger, sizeof linger);
  std::size_t drained = 0;
  while (drained < 4 * kBufferSize) {
    const ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
    if (n <= 0) break;
    drained += static_cast<std::size_t>(n);
  }
  ::close(fd_);
}

bool Connection::Fill() {
  if (begin_ == end_) {
    begin_ = end_ = 0;
  } else if (end_ == buffer_.size()) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, Buffered());
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) return false;  // full: the caller's limit was the buffer
  for (;;) {
    const ssize_t n = ::recv(fd_, buffer_.data() + end_, buffer_.size() - end_, 0);
    if (n > 0) {
      end_ += static_cast<std::size_t>(n);
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

ReadStatus Connection::ReadHead(Request& request) {
  // Empty lines before a request line are allowed (RFC 9112, 2.2).
  for (;;) {
    while (Buffered() >= 2 && buffer_[begin_] == '\r' && buffer_[begin_ + 1] == '\n') begin_ += 2;
    if (Buffered() >= 2 || (Buffered() == 1 && buffer_[begin_] != '\r')) break;
    if (!Fill()) return ReadStatus::kClosed;
  }
  static constexpr std::string_view kEnd = "\r\n\r\n";
  std::size_t searched = 0;  // bytes after begin_ already searched, less a possible partial match
  for (;;) {
    const char* first = buffer_.data() + begin_;
    const char* last = buffer_.data() + end_;
    const char* found = std::search(first + searched, last, kEnd.begin(), kEnd.end());
    if (found != last) {
      const std::string_view head(first, static_cast<std::size_t>(found - first));
      begin_ += head.size() + kEnd.size();
      return ParseHead(head, request) ? ReadStatus::kOk : ReadStatus::kBadRequest;
    }
    searched = Buffered() >= 3 ? Buffered() - 3 : 0;
    if (begin_ == 0 && end_ == buffer_.size()) return ReadStatus::kTooLarge;
    if (!Fill()) return ReadStatus::kBadRequest;  // the peer left in the middle of a head
  }
}

bool Connection::ReadLine(std::string& line, std::size_t limit) {
  line.clear();
  for (;;) {
    const char* base = buffer_.data();
    const char* nl = std::find(base + begin_, base + end_, '\n');
    if (nl != base + end_) {
      const std::size_t len = static_cast<std::size_t>(nl - (base + begin_));
      line.append(base + begin_, len);
      begin_ += len + 1;
      if (line.empty() || line.back() != '\r') return false;  // bare LF
      line.pop_back();
      return line.size() <= limit;
    }
    line.append(base + begin_, Buffered());
    begin_ = end_;
    // +1: the line's CR may have arrived in this read and its LF not yet.
    if (line.size() > limit + 1 || !Fill()) return false;
  }
}

bool Connection::ReadBody(const Request& request,
                          const std::function<void(std::string_view)>& sink) {
  auto read_exactly = [&](std::uint64_t remaining) {
    while (remaining > 0) {
      if (Buffered() == 0 && !Fill()) return false;
      const std::size_t take =
          static_cast<std::size_t>(std::min<std::uint64_t>(remaining, Buffered()));
      sink(std::string_view(buffer_.data() + begin_, take));
      begin_ += take;
      remaining -= take;
    }
    return true;
  };
  if (!request.chunked) return read_exactly(request.content_length);

  std::string line;
  for (;;) {
    if (!ReadLine(line, kMaxChunkLine)) return false;
    std::string_view size_text(line);
    size_text = size_text.substr(0, size_text.find(';'));  // chunk extensions are ignored
    while (!size_text.empty() && (size_text.back() == ' ' || size_text.back() == '\t')) {
      size_text.remove_suffix(1);
    }
    std::uint64_t size = 0;
    if (!ParseHex(size_text, size)) return false;
    if (size == 0) break;
    if (!read_exactly(size)) return false;
    if (!ReadLine(line, 0) || !line.empty()) return false;  // CRLF after the data
  }
  // Trailer fields, up to the empty line; their contents are dropped.
  std::size_t trailer_bytes = 0;
  for (;;) {
    if (!ReadLine(line, kMaxChunkLine)) return false;
    if (line.empty()) return true;
    trailer_bytes += line.size();
    if (trailer_bytes > kBufferSize) return false;
  }
}

bool Connection::Write(std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace ferry::examples
