#include "http/trailers.hpp"

namespace ferry::http {

bool AllowedInTrailer(std::string_view name) {
  if (name.empty() || name.front() == ':') return false;
  for (std::string_view forbidden : {"content-length",
                                     "transfer-encoding",
                                     "trailer",
                                     "host",
                                     "connection",
                                     "keep-alive",
                                     "proxy-connection",
                                     "te",
                                     "upgrade",
                                     "http2-settings",
                                     "authorization",
                                     "proxy-authorization",
                                     "proxy-authenticate",
                                     "www-authenticate",
                                     "cookie",
                                     "set-cookie",
                                     "content-type",
                                     "content-encoding",
                                     "content-range",
                                     "expect",
                                     "max-forwards",
                                     "range",
                                     "cache-control"}) {
    if (EqualsIgnoreCase(name, forbidden)) return false;
  }
  return true;
}

void AddTrailer(Headers& trailers, std::string_view name, std::string_view value) {
  if (AllowedInTrailer(name)) trailers.Add(name, value);
}

void AppendLastChunk(std::string& out, const Headers* trailers) {
  out.append("0\r\n");
  if (trailers != nullptr) {
    trailers->ForEach([&](const Headers::Field& f) {
      if (!AllowedInTrailer(f.name)) return;
      out.append(f.name);
      out.append(": ");
      out.append(f.value);
      out.append("\r\n");
    });
  }
  out.append("\r\n");
}

}  // namespace ferry::http
