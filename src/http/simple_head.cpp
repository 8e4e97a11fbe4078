#include "http/simple_head.hpp"

#include <array>
#include <cstdint>
#include <cstring>

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

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// `name` equals `lower` (already lower case) ignoring the case of `name`.
bool NameIs(std::string_view name, std::string_view lower) {
  if (name.size() != lower.size()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (Lower(name[i]) != lower[i]) return false;
  }
  return true;
}

}  // namespace

std::size_t ParseSimpleRequestHead(std::string_view data, RequestHead* out) {
  const std::size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  const std::size_t head_size = end + 4;
  std::string_view rest = data.substr(0, end + 2);  // every line with its CRLF

  // Request line: METHOD SP target SP HTTP/1.x CRLF
  const std::size_t line_end = rest.find("\r\n");
  std::string_view line = rest.substr(0, line_end);
  rest.remove_prefix(line_end + 2);
  const std::size_t sp1 = line.find(' ');
  if (sp1 == std::string_view::npos) return 0;
  const std::string_view method = line.substr(0, sp1);
  if (!IsKnownMethod(method)) return 0;
  line.remove_prefix(sp1 + 1);
  if (line.size() < 10 || line[line.size() - 9] != ' ') return 0;
  const std::string_view version = line.substr(line.size() - 8);
  const std::string_view target = line.substr(0, line.size() - 9);
  int minor;
  if (version == "HTTP/1.1") {
    minor = 1;
  } else if (version == "HTTP/1.0") {
    minor = 0;
  } else {
    return 0;
  }
  if (target.empty() || target[0] != '/') return 0;
  for (char c : target) {
    if (!Is(c, kTarget)) return 0;
  }

  std::uint64_t content_length = 0;
  bool has_length = false;
  bool has_connection = false;
  bool close = false;
  bool keep_alive_token = false;
  std::string_view expect;
  Headers& headers = out->headers;
  while (!rest.empty()) {
    const std::size_t eol = rest.find("\r\n");
    std::string_view field = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    std::size_t colon = 0;
    while (colon < field.size() && Is(field[colon], kToken)) ++colon;
    if (colon == 0 || colon == field.size() || field[colon] != ':') return 0;
    const std::string_view name = field.substr(0, colon);
    std::string_view value = field.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    if (value.empty() || value.back() == ' ' || value.back() == '\t') return 0;
    for (char c : value) {
      if (!Is(c, kValue)) return 0;
    }
    // The fields that change framing or the connection, as llhttp reads them.
    switch (Lower(name[0])) {
      case 'c':
        if (NameIs(name, "content-length")) {
          if (has_length || value.size() > 18) return 0;
          has_length = true;
          for (char c : value) {
            if (c < '0' || c > '9') return 0;
            content_length = content_length * 10 + static_cast<std::uint64_t>(c - '0');
          }
        } else if (NameIs(name, "connection")) {
          if (has_connection) return 0;
          has_connection = true;
          if (NameIs(value, "close")) {
            close = true;
          } else if (NameIs(value, "keep-alive")) {
            keep_alive_token = true;
          } else {
            return 0;
          }
        }
        break;
      case 'e':
        if (expect.empty() && NameIs(name, "expect")) expect = value;  // the first, as FillHead
        break;
      case 'p':
        if (NameIs(name, "proxy-connection")) return 0;
        break;
      case 't':
        if (NameIs(name, "transfer-encoding")) return 0;
        break;
      case 'u':
        if (NameIs(name, "upgrade")) return 0;
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
  out->expect_continue = !expect.empty() && NameIs(expect, "100-continue");
  return head_size;
}

}  // namespace ferry::http
