#include "config/address.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace ferry::config {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

tl::unexpected<Error> Bad(std::string_view text, std::string_view why) {
  return Fail(ErrorCode::kInvalidArgument, fmt::format("invalid address '{}': {}", text, why));
}

}  // namespace

std::string Address::ToString() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

bool IsIpLiteral(std::string_view host) {
  const std::string h(host);
  std::array<unsigned char, 16> buf{};
  return inet_pton(AF_INET, h.c_str(), buf.data()) == 1 ||
         inet_pton(AF_INET6, h.c_str(), buf.data()) == 1;
}

bool IsDnsName(std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);  // fully qualified
  if (host.empty() || host.size() > 253) return false;
  std::string_view last_label;
  while (!host.empty()) {
    const std::size_t dot = host.find('.');
    const std::string_view label = host.substr(0, dot);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
      return false;
    }
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    }
    last_label = label;
    host = dot == std::string_view::npos ? std::string_view() : host.substr(dot + 1);
    if (dot != std::string_view::npos && host.empty()) return false;  // "a..b" or "a."
  }
  // An all-numeric last label is a mistyped IPv4 address ("10.0.0.300"), not a name.
  return !std::all_of(last_label.begin(), last_label.end(), IsDigit);
}

std::string CanonicalHost(std::string_view host) {
  const std::string h(host);
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET6, h.c_str(), buf.data()) == 1) {
    std::array<char, INET6_ADDRSTRLEN> out{};
    if (inet_ntop(AF_INET6, buf.data(), out.data(), out.size()) != nullptr) return out.data();
  }
  std::string lower = h;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower;
}

Result<Address> ParseAddress(std::string_view text, AddressUse use) {
  std::string_view host;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    const std::size_t close = text.find(']');
    if (close == std::string_view::npos) return Bad(text, "missing ']' after the IPv6 address");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') {
      return Bad(text, "expected ':port' after ']'");
    }
    port = text.substr(close + 2);
    std::array<unsigned char, 16> buf{};
    if (inet_pton(AF_INET6, std::string(host).c_str(), buf.data()) != 1) {
      return Bad(text, fmt::format("'{}' is not an IPv6 address", host));
    }
  } else {
    const std::size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return Bad(text, "expected host:port");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return Bad(text, "write IPv6 addresses in brackets, like [::1]:8080");
    }
    if (host.empty()) return Bad(text, "missing host before ':'");
    const bool literal = IsIpLiteral(host);
    if (use == AddressUse::kListener && !literal) {
      return Bad(text, fmt::format("a listen address must be a literal IP address, not '{}' "
                                   "(use 0.0.0.0 or 127.0.0.1)",
                                   host));
    }
    if (!literal && !IsDnsName(host)) {
      return Bad(text, fmt::format("'{}' is neither an IP address nor a DNS name", host));
    }
  }
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::all_of(port.begin(), port.end(), IsDigit) &&
                      !(port.size() > 1 && port.front() == '0');
  const unsigned value = digits ? static_cast<unsigned>(std::stoul(std::string(port))) : 0;
  const unsigned min_port = use == AddressUse::kListener ? 0 : 1;
  if (!digits || value < min_port || value > 65535) {
    return Bad(text, fmt::format("port must be a number from {} to 65535", min_port));
  }
  return Address{std::string(host), static_cast<std::uint16_t>(value)};
}

}  // namespace ferry::config

namespace ferry::config {

Result<IpNetwork> ParseIpNetwork(std::string_view text) {
  IpNetwork net;
  net.text.assign(text);
  std::string_view host = text;
  std::string_view bits;
  if (const std::size_t slash = text.find('/'); slash != std::string_view::npos) {
    host = text.substr(0, slash);
    bits = text.substr(slash + 1);
  }
  const std::string h(host);
  if (inet_pton(AF_INET, h.c_str(), net.bytes) == 1) {
    net.v6 = false;
  } else if (inet_pton(AF_INET6, h.c_str(), net.bytes) == 1) {
    net.v6 = true;
  } else {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("invalid network '{}': '{}' is not an IP address", text, host));
  }
  const int max_bits = net.v6 ? 128 : 32;
  int prefix = max_bits;
  if (text.find('/') != std::string_view::npos) {
    const bool digits =
        !bits.empty() && bits.size() <= 3 && std::all_of(bits.begin(), bits.end(), IsDigit);
    prefix = digits ? std::stoi(std::string(bits)) : -1;
    if (prefix < 0 || prefix > max_bits) {
      return Fail(
          ErrorCode::kInvalidArgument,
          fmt::format("invalid network '{}': the prefix length must be 0-{}", text, max_bits));
    }
  }
  net.prefix = static_cast<std::uint8_t>(prefix);
  // Keep only the network part, so Contains compares whole bytes and a tail.
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(prefix - i * 8, 0, 8);
    net.bytes[i] &= static_cast<std::uint8_t>(keep == 0 ? 0 : (0xFF << (8 - keep)) & 0xFF);
  }
  return net;
}

bool IpNetwork::Contains(std::string_view ip) const {
  const std::string h(ip);
  std::uint8_t addr[16] = {};
  if (inet_pton(v6 ? AF_INET6 : AF_INET, h.c_str(), addr) != 1) {
    // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
    if (v6 || h.rfind("::ffff:", 0) != 0 || inet_pton(AF_INET, h.c_str() + 7, addr) != 1) {
      return false;
    }
  }
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(static_cast<int>(prefix) - i * 8, 0, 8);
    if (keep == 0) break;
    const auto mask = static_cast<std::uint8_t>((0xFF << (8 - keep)) & 0xFF);
    if ((addr[i] & mask) != bytes[i]) return false;
  }
  return true;
}

}  // namespace ferry::config
