#include "proxy/grpc.hpp"

#include <algorithm>
#include <charconv>

#include "http/serializer.hpp"
#include "proxy/local_reply.hpp"
#include "server/exchange.hpp"

namespace ferry::proxy::grpc {

bool IsGrpc(const http::Headers& headers) {
  const auto type = headers.Get("content-type");
  if (!type) return false;
  constexpr std::string_view kGrpc = "application/grpc";
  if (type->size() < kGrpc.size() ||
      !http::EqualsIgnoreCase(type->substr(0, kGrpc.size()), kGrpc)) {
    return false;
  }
  const std::string_view rest = type->substr(kGrpc.size());
  return rest.empty() || rest.front() == '+' || rest.front() == ';';
}

Status StatusFor(int http_status, std::string_view code) {
  if (code == reply::kNoRoute) return kUnimplemented;
  if (code == reply::kUpstreamTimeout || code == reply::kRequestTimeout) return kDeadlineExceeded;
  switch (http_status) {
    case 400:
    case 431:
    case 500:
      return kInternal;
    case 401:
      return kUnauthenticated;
    case 403:
      return kPermissionDenied;
    case 404:
      return kUnimplemented;
    case 408:
    case 504:
      return kDeadlineExceeded;
    case 413:
    case 429:
      return kResourceExhausted;
    case 502:
    case 503:
      return kUnavailable;
    default:
      return http_status >= 500 ? kInternal : kUnknown;
  }
}

int StatusOf(const http::Headers* fields) {
  if (fields == nullptr) return -1;
  const auto value = fields->Get("grpc-status");
  if (!value || value->empty() || value->size() > 3) return -1;
  int status = 0;
  const auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), status);
  return ec == std::errc() && end == value->data() + value->size() ? status : -1;
}

std::string PercentEncode(std::string_view message) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(message.size());
  for (const char c : message) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b <= 0x7e && b != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[b >> 4]);
      out.push_back(kHex[b & 0xf]);
    }
  }
  return out;
}

void MakeTrailersOnlyHead(const LocalReply& reply, std::string_view message,
                          std::string_view request_id, server::ResponseHead& head) {
  MakeReplyHead(reply, request_id, head);
  head.status = 200;
  head.headers.Remove("content-type");
  head.headers.Add("content-type", "application/grpc");
  const Status status = StatusFor(reply.status, reply.code);
  char digits[8];
  const auto end = std::to_chars(digits, digits + sizeof(digits), static_cast<int>(status)).ptr;
  head.headers.Add("grpc-status", std::string_view(digits, end - digits));
  head.headers.Add("grpc-message", PercentEncode(message));
  if (reply.code == reply::kCircuitOpen) head.headers.Add(kBreakerHeader, "open");
}

std::optional<std::chrono::nanoseconds> ParseTimeout(std::string_view value) {
  if (value.size() < 2 || value.size() > 9) return std::nullopt;
  const std::string_view digits = value.substr(0, value.size() - 1);
  std::uint64_t n = 0;
  for (const char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  using std::chrono::nanoseconds;
  constexpr std::uint64_t kCapSeconds = 24 * 3600;
  std::uint64_t seconds_per_unit = 0;  // for H, M, S
  std::uint64_t ns_per_unit = 0;       // for m, u, n
  switch (value.back()) {
    case 'H':
      seconds_per_unit = 3600;
      break;
    case 'M':
      seconds_per_unit = 60;
      break;
    case 'S':
      seconds_per_unit = 1;
      break;
    case 'm':
      ns_per_unit = 1'000'000;
      break;
    case 'u':
      ns_per_unit = 1'000;
      break;
    case 'n':
      ns_per_unit = 1;
      break;
    default:
      return std::nullopt;
  }
  if (seconds_per_unit != 0) {
    const std::uint64_t seconds = std::min(n * seconds_per_unit, kCapSeconds);
    return nanoseconds(static_cast<std::int64_t>(seconds * 1'000'000'000));
  }
  return std::min(nanoseconds(static_cast<std::int64_t>(n * ns_per_unit)),
                  nanoseconds(static_cast<std::int64_t>(kCapSeconds * 1'000'000'000)));
}

std::string FormatTimeout(std::chrono::nanoseconds left) {
  const std::int64_t us = std::max<std::int64_t>(1, (left.count() + 999) / 1000);
  if (us < 100'000'000) return std::to_string(us) + "u";
  return std::to_string((us + 999) / 1000) + "m";
}

std::optional<std::size_t> MessageMeter::Feed(std::string_view bytes) {
  if (over_) return 0;
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    if (skip_ > 0) {
      const std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(skip_, bytes.size() - pos));
      skip_ -= n;
      pos += n;
      continue;
    }
    const std::size_t prefix_start = pos >= have_ ? pos - have_ : 0;
    prefix_[have_++] = static_cast<unsigned char>(bytes[pos++]);
    if (have_ < sizeof(prefix_)) continue;
    have_ = 0;
    declared_ = (std::uint64_t{prefix_[1]} << 24) | (std::uint64_t{prefix_[2]} << 16) |
                (std::uint64_t{prefix_[3]} << 8) | std::uint64_t{prefix_[4]};
    if (max_ != 0 && declared_ > max_) {
      over_ = true;
      return prefix_start;
    }
    skip_ = declared_;
  }
  return std::nullopt;
}

}  // namespace ferry::proxy::grpc
