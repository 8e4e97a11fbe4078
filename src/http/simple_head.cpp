#include "http/simple_head.hpp"

#include <array>
#include <cstdint>
#include <cstring>

#include "http/headers.hpp"

namespace ferry::http {
namespace {

// Character classes of the subset, one table lookup per byte.
enum : std::uint8_t { kToken = 1, kTarget = 2, kValue = 4 };

constexpr std::array<std::uint8_t, 256> MakeClasses() {
  std::array<std::uint8_t, 256> c{};
  for (int i = 0; i < 256; ++i) {
    const bool alnum = (i >= 'a' && i <= 'z') || (i >= 'A' && i <= 'Z') || (i >= '0' && i <= '9');
    std::uint8_t bits = 0;
    if (alnum || (i != 0 && std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(i)) !=
                                std::string_view::npos)) {
      bits |= kToken;
    }
    // RFC 3986: unreserved, sub-delims, ':' '@' (pchar), '/' '?' and '%' of escapes.
    if (alnum || (i != 0 && std::string_view("-._~!$&'()*+,;=:@/?%").find(static_cast<char>(i)) !=
                                std::string_view::npos)) {
      bits |= kTarget;
    }
    if ((i >= 0x20 && i <= 0x7e) || i == '\t') bits |= kValue;
    c[static_cast<std::size_t>(i)] = bits;
  }
  return c;
}

constexpr std::array<std::uint8_t, 256> kClasses = MakeClasses();

bool Is(char c, std::uint8_t cls) { return (kClasses[static_cast<unsigned char>(c)] & cls) != 0; }

bool IsKnownMethod(std::string_view m) {
  switch (m.size()) {
    case 3:
      return m == "GET" || m == "PUT";
    case 4:
      return m == "POST" || m == "HEAD";
    case 5:
      return m == "PATCH";
    case 6:
      return m == "DELETE";
    case 7:
      return m == "OPTIONS";
    default:
      return false;
  }
}

}  // namespace

std::size_t ParseSimpleRequestHead(std::string_view data, Http1RequestHead* out) {
  // One pass with a cursor: every byte is looked at once, and a head cut short anywhere (no
  // blank line yet) runs into `end` and is left to llhttp like any other.
  const char* p = data.data();
  const char* const end = p + data.size();

  // Request line: METHOD SP target SP HTTP/1.x CRLF
  const char* const method_begin = p;
  while (p < end && *p >= 'A' && *p <= 'Z') ++p;
  const std::string_view method(method_begin, static_cast<std::size_t>(p - method_begin));
  if (p == end || *p != ' ' || !IsKnownMethod(method)) return 0;
  const char* const target_begin = ++p;
  while (p < end && Is(*p, kTarget)) ++p;
  const std::string_view target(target_begin, static_cast<std::size_t>(p - target_begin));
  if (p == end || *p != ' ' || target.empty() || target[0] != '/') return 0;
  ++p;
  if (end - p < 10 || std::memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1') ||
      p[8] != '\r' || p[9] != '\n') {
    return 0;
  }
  const int minor = p[7] - '0';
  p += 10;

  std::uint64_t content_length = 0;
  bool has_length = false;
  bool has_connection = false;
  bool close = false;
  bool keep_alive_token = false;
  std::string_view expect;
  Headers& headers = out->headers;
  for (;;) {
    if (end - p < 2) return 0;
    if (p[0] == '\r') {  // the blank line
      if (p[1] != '\n') return 0;
      p += 2;
      break;
    }
    const char* const name_begin = p;
    while (p < end && Is(*p, kToken)) ++p;
    const std::string_view name(name_begin, static_cast<std::size_t>(p - name_begin));
    if (p == end || *p != ':' || name.empty()) return 0;
    ++p;
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    const char* const value_begin = p;
    while (p < end && Is(*p, kValue)) ++p;
    const std::string_view value(value_begin, static_cast<std::size_t>(p - value_begin));
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n') return 0;
    p += 2;
    if (value.empty() || value.back() == ' ' || value.back() == '\t') return 0;
    // The fields that change framing or the connection, as llhttp reads them.
    switch (name[0] | 0x20) {  // a letter in lower case (other token bytes match no case)
      case 'c':
        if (EqualsIgnoreCase(name, "content-length")) {
          if (has_length || value.size() > 18) return 0;
          has_length = true;
          for (char c : value) {
            if (c < '0' || c > '9') return 0;
            content_length = content_length * 10 + static_cast<std::uint64_t>(c - '0');
          }
        } else if (EqualsIgnoreCase(name, "connection")) {
          if (has_connection) return 0;
          has_connection = true;
          if (EqualsIgnoreCase(value, "close")) {
            close = true;
          } else if (EqualsIgnoreCase(value, "keep-alive")) {
            keep_alive_token = true;
          } else {
            return 0;
          }
        }
        break;
      case 'e':
        // Expect is a list (FillHead reads every line and element): only one plain value here.
        if (EqualsIgnoreCase(name, "expect")) {
          if (!expect.empty() || value.find(',') != std::string_view::npos) return 0;
          expect = value;
        }
        break;
      case 'p':
        if (EqualsIgnoreCase(name, "proxy-connection")) return 0;
        break;
      case 't':
        if (EqualsIgnoreCase(name, "transfer-encoding")) return 0;
        break;
      case 'u':
        if (EqualsIgnoreCase(name, "upgrade")) return 0;
        break;
      default:
        break;
    }
    headers.Add(name, value);
  }

  out->method.assign(method);
  out->target.assign(target);
  out->version_minor = minor;
  out->keep_alive = minor == 1 ? !close : keep_alive_token;
  if (has_length && content_length > 0) {
    out->framing = BodyFraming::kContentLength;
    out->content_length = content_length;
  } else {
    out->framing = BodyFraming::kNone;
    out->content_length = 0;
  }
  out->expect_continue = !expect.empty() && EqualsIgnoreCase(expect, "100-continue");
  return static_cast<std::size_t>(p - data.data());
}

}  // namespace ferry::http
