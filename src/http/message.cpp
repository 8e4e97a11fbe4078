#include "http/message.hpp"

namespace ferry::http {

std::string_view TargetPath(std::string_view target) { return target.substr(0, target.find('?')); }

std::string_view TargetQuery(std::string_view target) {
  const std::size_t q = target.find('?');
  return q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

void RequestHead::Clear() {
  // The defaults come from a fresh head; the moved-out storage goes back in, emptied.
  std::string kept_method = std::move(method);
  std::string kept_target = std::move(target);
  Headers kept_headers = std::move(headers);
  *this = RequestHead();
  kept_method.clear();
  kept_target.clear();
  kept_headers.Clear();
  method = std::move(kept_method);
  target = std::move(kept_target);
  headers = std::move(kept_headers);
}

void Http1RequestHead::Clear() {
  RequestHead::Clear();
  const Http1RequestHead fresh;
  version_minor = fresh.version_minor;
  framing = fresh.framing;
  content_length = fresh.content_length;
  keep_alive = fresh.keep_alive;
  expect_continue = fresh.expect_continue;
}

void ResponseHead::Clear() {
  std::string kept_reason = std::move(reason);
  Headers kept_headers = std::move(headers);
  *this = ResponseHead();
  kept_reason.clear();
  kept_headers.Clear();
  reason = std::move(kept_reason);
  headers = std::move(kept_headers);
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
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
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 507:
      return "Insufficient Storage";
    default:
      return "Unknown";
  }
}

}  // namespace ferry::http
