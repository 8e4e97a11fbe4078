#include "config/access_loader.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

namespace ferry::config::internal {
namespace {

constexpr std::array<std::string_view, 9> kMethods = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"};

bool IsHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return std::isxdigit(static_cast<unsigned char>(c)) != 0;
         });
}

// "https://app.example.com" or "http://localhost:3000": a scheme, "://", a host and an optional
// port; no path, no trailing slash (what a browser sends in Origin).
bool IsOrigin(std::string_view s) {
  const std::size_t sep = s.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  const std::string_view scheme = s.substr(0, sep);
  const std::string_view rest = s.substr(sep + 3);
  const bool scheme_ok = std::all_of(scheme.begin(), scheme.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
  });
  const bool rest_ok = !rest.empty() && std::all_of(rest.begin(), rest.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == ':' ||
           c == '[' || c == ']';
  });
  return scheme_ok && rest_ok;
}

class AccessReader : private StrictReader {
 public:
  explicit AccessReader(Diagnostics& diags) : StrictReader(diags) {}

  std::optional<ApiKeys> ReadApiKeys(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    ApiKeys out;
    if (auto header = map.Take("header")) {
      if (auto name = ReadHeaderName(*header, d_)) out.header = *name;
    }
    if (auto keys = Require(map, field, "keys")) {
      if (auto items = ReadSequence(*keys, d_)) {
        if (items->empty()) Error(*keys, "list at least one key");
        std::set<std::string> names;
        std::set<std::string> hashes;
        for (const Field& item : *items) {
          if (auto key = ReadApiKey(item, names, hashes)) out.keys.push_back(std::move(*key));
        }
      }
    }
    map.Finish();
    return out;
  }

  std::optional<Cors> ReadCors(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    Cors out;
    std::optional<Field> star;
    if (auto origins = Require(map, field, "allow_origins")) {
      if (auto items = ReadSequence(*origins, d_)) {
        if (items->empty()) Error(*origins, "list at least one origin, or \"*\"");
        for (const Field& item : *items) {
          auto origin = ReadString(item, d_);
          if (!origin) continue;
          if (*origin == "*") {
            star = item;
          } else if (!IsOrigin(*origin)) {
            Error(item, fmt::format("'{}' is not an origin: write scheme://host[:port], with no "
                                    "path or trailing slash, or \"*\"",
                                    *origin));
            continue;
          }
          if (std::find(out.allow_origins.begin(), out.allow_origins.end(), *origin) !=
              out.allow_origins.end()) {
            Error(item, fmt::format("origin '{}' is listed twice", *origin));
            continue;
          }
          out.allow_origins.push_back(*origin);
        }
        if (star && out.allow_origins.size() > 1) {
          Error(*star, "\"*\" allows every origin: list no other origin beside it");
        }
      }
    }
    if (auto methods = map.Take("allow_methods")) out.allow_methods = ReadMethods(*methods);
    if (auto headers = map.Take("allow_headers")) out.allow_headers = ReadHeaderNames(*headers);
    if (auto headers = map.Take("expose_headers")) out.expose_headers = ReadHeaderNames(*headers);
    auto credentials = map.Take("allow_credentials");
    if (credentials) {
      if (auto value = ReadBool(*credentials, d_)) out.allow_credentials = *value;
    }
    if (out.allow_credentials && star) {
      Error(*credentials,
            "allow_credentials cannot be used with allow_origins \"*\" (browsers refuse it): "
            "list the origins");
    }
    Assign(map, "max_age", out.max_age, [&](const Field& f) { return ReadDuration(f, d_); });
    map.Finish();
    return out;
  }

  AuthorizationBlock ReadAuthorization(const Field& field) {
    AuthorizationBlock block;
    MapReader map(field, d_);
    if (!map.ok()) return block;
    Authorization out;
    if (auto fallback = map.Take("default")) {
      if (auto word = ReadString(*fallback, d_)) {
        if (*word == "allow" || *word == "deny") {
          out.default_allow = *word == "allow";
        } else {
          Error(*fallback, fmt::format("unknown default '{}' (expected allow or deny)", *word));
        }
      }
    }
    if (auto rules = Require(map, field, "rules")) {
      if (auto items = ReadSequence(*rules, d_)) {
        for (const Field& item : *items) {
          if (auto rule = ReadRule(item, block.routes)) out.rules.push_back(std::move(*rule));
        }
      }
    }
    map.Finish();
    block.authorization = std::move(out);
    return block;
  }

 private:
  std::optional<ApiKey> ReadApiKey(const Field& field, std::set<std::string>& names,
                                   std::set<std::string>& hashes) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    ApiKey key;
    bool ok = true;
    if (auto name = Require(map, field, "name")) {
      auto text = ReadString(*name, d_);
      ok = ok && text.has_value();
      if (text && text->empty()) {
        Error(*name, "must not be empty");
        ok = false;
      } else if (text && !names.insert(*text).second) {
        Error(*name, fmt::format("key name '{}' is used twice", *text));
        ok = false;
      }
      if (text) key.name = *text;
    } else {
      ok = false;
    }
    if (auto hash = Require(map, field, "sha256")) {
      auto text = ReadString(*hash, d_);
      ok = ok && text.has_value();
      if (text && !IsHex64(*text)) {
        Error(*hash,
              "must be the key's SHA-256 as 64 hex digits (printf %s KEY | sha256sum), not the "
              "key itself");
        ok = false;
      } else if (text) {
        std::string lower = *text;
        std::transform(lower.begin(), lower.end(), lower.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!hashes.insert(lower).second) {
          Error(*hash, "the same key is listed twice (under another name)");
          ok = false;
        }
        key.sha256 = std::move(lower);
      }
    } else {
      ok = false;
    }
    map.Finish();
    if (!ok) return std::nullopt;
    return key;
  }

  std::vector<std::string> ReadMethods(const Field& field) {
    std::vector<std::string> out;
    auto items = ReadSequence(field, d_);
    if (!items) return out;
    for (const Field& item : *items) {
      auto method = ReadString(item, d_);
      if (!method) continue;
      std::string upper = *method;
      std::transform(upper.begin(), upper.end(), upper.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      if (std::find(kMethods.begin(), kMethods.end(), upper) == kMethods.end()) {
        Error(item, fmt::format("unknown method '{}' (expected one of: {})", *method,
                                fmt::join(kMethods, ", ")));
      } else if (upper != *method) {
        Error(item, fmt::format("method '{}' must be written in uppercase: {}", *method, upper));
      } else if (std::find(out.begin(), out.end(), upper) != out.end()) {
        Error(item, fmt::format("method '{}' is listed twice", upper));
      } else {
        out.push_back(upper);
      }
    }
    return out;
  }

  std::vector<std::string> ReadHeaderNames(const Field& field) {
    std::vector<std::string> out;
    auto items = ReadSequence(field, d_);
    if (!items) return out;
    for (const Field& item : *items) {
      auto name = ReadHeaderName(item, d_);
      if (!name) continue;
      if (std::find(out.begin(), out.end(), *name) != out.end()) {
        Error(item, fmt::format("header '{}' is listed twice", *name));
        continue;
      }
      out.push_back(*name);
    }
    return out;
  }

  // Callers and paths: exact, or a prefix with one trailing '*'.
  std::vector<std::string> ReadPatterns(const Field& field, bool paths) {
    std::vector<std::string> out;
    auto items = ReadSequence(field, d_);
    if (!items) return out;
    if (items->empty()) Error(field, "list at least one, or leave the key out");
    for (const Field& item : *items) {
      auto text = ReadString(item, d_);
      if (!text) continue;
      const std::size_t star = text->find('*');
      if (text->empty()) {
        Error(item, "must not be empty");
      } else if (star != std::string::npos && star + 1 != text->size()) {
        Error(item, fmt::format("'{}': '*' may only end a pattern (a prefix)", *text));
      } else if (paths && text->front() != '/' && *text != "*") {
        Error(item, fmt::format("must start with '/', got '{}'", *text));
      } else {
        out.push_back(*text);
      }
    }
    return out;
  }

  std::optional<AuthzRule> ReadRule(const Field& field, std::vector<ServiceReference>& routes) {
    MapReader outer(field, d_);
    if (!outer.ok()) return std::nullopt;
    auto allow = outer.Take("allow");
    auto deny = outer.Take("deny");
    outer.Finish();
    if (allow && deny) {
      Error(field, "a rule is either allow: {...} or deny: {...}, not both");
      return std::nullopt;
    }
    if (!allow && !deny) {
      Error(field, "a rule is allow: {...} or deny: {...}");
      return std::nullopt;
    }
    const Field& body = allow ? *allow : *deny;
    AuthzRule rule;
    rule.allow = allow.has_value();
    MapReader map(body, d_);
    if (!map.ok()) return std::nullopt;
    if (auto callers = map.Take("callers")) rule.callers = ReadPatterns(*callers, false);
    if (auto paths = map.Take("paths")) rule.paths = ReadPatterns(*paths, true);
    if (auto methods = map.Take("methods")) rule.methods = ReadMethods(*methods);
    if (auto names = map.Take("routes")) {
      if (auto items = ReadSequence(*names, d_)) {
        if (items->empty()) Error(*names, "list at least one route, or leave the key out");
        for (const Field& item : *items) {
          if (auto name = ReadString(item, d_)) {
            rule.routes.push_back(*name);
            routes.push_back({*name, item.mark, item.path});
          }
        }
      }
    }
    if (auto claims = map.Take("claims")) {
      MapReader claim_map(*claims, d_);
      for (const auto& entry : claim_map.TakeAll()) {
        if (auto value = ReadString(entry.value, d_)) rule.claims.emplace_back(entry.key, *value);
      }
    }
    map.Finish();
    return rule;
  }
};

}  // namespace

bool IsBusOperation(std::string_view name) {
  return std::find(std::begin(kBusOperations), std::end(kBusOperations), name) !=
         std::end(kBusOperations);
}

std::optional<ApiKeys> ReadApiKeys(const Field& field, Diagnostics& diags) {
  return AccessReader(diags).ReadApiKeys(field);
}

std::optional<Cors> ReadCors(const Field& field, Diagnostics& diags) {
  return AccessReader(diags).ReadCors(field);
}

AuthorizationBlock ReadAuthorization(const Field& field, Diagnostics& diags) {
  return AccessReader(diags).ReadAuthorization(field);
}

}  // namespace ferry::config::internal
