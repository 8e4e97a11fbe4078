#include "auth/bearer.hpp"

#include <fmt/format.h>

namespace ferry::auth {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string_view BearerToken(std::string_view value) {
  value = Trim(value);
  const std::size_t space = value.find_first_of(" \t");
  if (space == std::string_view::npos) return {};
  if (!http::EqualsIgnoreCase(value.substr(0, space), "bearer")) return {};
  return Trim(value.substr(space + 1));
}

std::string_view CookieValue(const http::Headers& headers, std::string_view name) {
  std::string_view found;
  headers.ForEach([&](const http::Headers::Field& field) {
    if (!found.empty() || !http::EqualsIgnoreCase(field.name, "cookie")) return;
    std::string_view rest = field.value;
    while (!rest.empty() && found.empty()) {
      const std::size_t end = rest.find(';');
      std::string_view pair = Trim(rest.substr(0, end));
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      const std::size_t equals = pair.find('=');
      if (equals == std::string_view::npos || Trim(pair.substr(0, equals)) != name) continue;
      std::string_view value = Trim(pair.substr(equals + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      found = value;
    }
  });
  return found;
}

}  // namespace

std::string_view RequestToken(const http::Headers& headers, std::string_view cookie) {
  std::string_view token;
  if (auto authorization = headers.Get("authorization")) token = BearerToken(*authorization);
  if (token.empty() && !cookie.empty()) token = CookieValue(headers, cookie);
  return token;
}

std::string BearerChallenge(std::string_view realm, std::string_view refusal) {
  if (refusal.empty()) return fmt::format(R"(Bearer realm="{}")", realm);
  std::string description;
  description.reserve(refusal.size());
  for (const char c : refusal) {
    const auto byte = static_cast<unsigned char>(c);
    description.push_back(byte < 0x20 || byte > 0x7e || c == '"' || c == '\\' ? ' ' : c);
  }
  return fmt::format(R"(Bearer realm="{}", error="invalid_token", error_description="{}")", realm,
                     description);
}

}  // namespace ferry::auth
