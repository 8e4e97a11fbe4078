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

void RemoveHopByHop(Headers& headers) {
  if (auto connection = headers.Get("connection")) {
    // Names listed in Connection are hop-by-hop too; copy first: removal invalidates views.
    std::string listed(*connection);
    std::string_view rest = listed;
    while (!rest.empty()) {
      std::size_t comma = rest.find(',');
      std::string_view item = rest.substr(0, comma);
      while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
      while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
      if (!item.empty()) headers.Remove(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  bool any = false;
  headers.ForEach([&](const Headers::Field& f) { any = any || IsHopByHop(f.name); });
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
