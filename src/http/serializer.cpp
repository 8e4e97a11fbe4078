#include "http/serializer.hpp"

#include <array>
#include <charconv>

namespace ferry::http {

bool IsHopByHop(std::string_view name) {
  static constexpr std::array<std::string_view, 9> kHopByHop = {"connection",
                                                                "keep-alive",
                                                                "proxy-connection",
                                                                "te",
                                                                "trailer",
                                                                "transfer-encoding",
                                                                "upgrade",
                                                                "proxy-authenticate",
                                                                "proxy-authorization"};
  for (std::string_view h : kHopByHop) {
    if (EqualsIgnoreCase(name, h)) return true;
  }
  return false;
}

std::string_view NamesFramingField(std::string_view connection) {
  for (std::string_view name : {"content-length", "transfer-encoding", "host"}) {
    if (HasToken(connection, name)) return name;
  }
  return {};
}

namespace {

// Calls fn(item) for each non-empty element of a comma-separated list, trimmed.
template <typename Fn>
void ForEachListItem(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

void RemoveHopByHop(Headers& headers) {
  // One pass: every Connection line (repeated lines are one list, RFC 9110 5.3) removes what it
  // names; Remove only marks fields, so the views stay valid.
  bool any = false;
  headers.ForEach([&](const Headers::Field& f) {
    if (!IsHopByHop(f.name)) return;
    any = true;
    if (!EqualsIgnoreCase(f.name, "connection")) return;
    ForEachListItem(f.value, [&](std::string_view item) {
      if (!EqualsIgnoreCase(item, "content-length") && !EqualsIgnoreCase(item, "host")) {
        headers.Remove(item);
      }
    });
  });
  if (!any) return;
  for (std::string_view h :
       {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authenticate", "proxy-authorization"}) {
    headers.Remove(h);
  }
}

namespace {

void AppendFields(std::string& out, const Headers& headers) {
  headers.ForEach([&](const Headers::Field& f) {
    out.append(f.name);
    out.append(": ");
    out.append(f.value);
    out.append(kCrlf);
  });
  out.append(kCrlf);
}

}  // namespace

void AppendRequestHead(std::string& out, std::string_view method, std::string_view target,
                       const Headers& headers) {
  out.reserve(out.size() + headers.arena_bytes() + headers.size() * 4 + target.size() + 32);
  out.append(method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\n");
  AppendFields(out, headers);
}

void AppendResponseHead(std::string& out, int status, std::string_view reason,
                        const Headers& headers) {
  out.reserve(out.size() + headers.arena_bytes() + headers.size() * 4 + reason.size() + 32);
  char code[4];
  std::to_chars(code, code + 3, status);
  code[3] = 0;
  out.append("HTTP/1.1 ");
  out.append(code, 3);
  out.push_back(' ');
  out.append(reason.empty() ? ReasonPhrase(status) : reason);
  out.append(kCrlf);
  AppendFields(out, headers);
}

void AppendChunkSize(std::string& out, std::uint64_t size) {
  char buf[20];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), size, 16);
  out.append(buf, end);
  out.append(kCrlf);
}

}  // namespace ferry::http
