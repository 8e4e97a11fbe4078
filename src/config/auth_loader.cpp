#include "config/auth_loader.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <string_view>

namespace ferry::config::internal {
namespace {

constexpr std::array<std::string_view, 13> kAlgorithms = {
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256",
    "ES384", "ES512", "EdDSA", "HS256", "HS384", "HS512"};

// RFC 7518 section 3.2: an HMAC key at least as long as the hash (HS256: 32 bytes).
constexpr long kMinSecretBytes = 32;

bool IsHmacName(std::string_view name) { return name.starts_with("HS"); }

// Headers a claim must not be forwarded as: framing and routing ones, and Ferry's own.
bool IsReservedHeader(std::string_view name) {
  constexpr std::array<std::string_view, 7> kReserved = {
      "host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"};
  return name.starts_with("x-ferry-") ||
         std::find(kReserved.begin(), kReserved.end(), name) != kReserved.end();
}

// The host of an http(s) URL, without port or brackets; "" if there is none.
std::string_view UrlHost(std::string_view url) {
  const std::size_t start = url.find("://");
  if (start == std::string_view::npos) return {};
  std::string_view rest = url.substr(start + 3);
  rest = rest.substr(0, rest.find('/'));
  if (rest.starts_with('[')) return rest.substr(1, rest.find(']') - 1);
  return rest.substr(0, rest.find(':'));
}

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

class AuthReader : private StrictReader {
 public:
  explicit AuthReader(Diagnostics& diags) : StrictReader(diags) {}

  Auth Read(const Field& field) {
    Auth auth;
    MapReader map(field, d_);
    if (auto jwt = map.Take("jwt")) {
      MapReader providers(*jwt, d_);
      for (auto& entry : providers.TakeAll()) {
        if (!IsProviderName(entry.key)) {
          d_.Add(entry.key_mark,
                 Describe(*jwt, fmt::format("invalid provider name '{}': use letters, digits, "
                                            "'_', '.' and '-', starting with a letter or digit",
                                            entry.key)));
          continue;
        }
        if (auto provider = ReadProvider(entry.value, entry.key)) {
          auth.jwt.emplace(entry.key, std::move(*provider));
        }
      }
    }
    map.Finish();
    return auth;
  }

  std::optional<RouteAuth> ReadRoute(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    RouteAuth out;
    if (auto jwt = Require(map, field, "jwt")) {
      if (auto name = ReadString(*jwt, d_)) out.jwt = *name;
    }
    map.Finish();
    if (out.jwt.empty()) return std::nullopt;
    return out;
  }

 private:
  static bool IsProviderName(std::string_view s) {
    if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s.front()))) {
      return false;
    }
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
    });
  }

  std::optional<JwtProvider> ReadProvider(const Field& field, const std::string& name) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    JwtProvider provider;
    provider.name = name;
    const std::size_t errors_before = d_.size();
    if (auto issuer = Require(map, field, "issuer")) {
      auto text = ReadString(*issuer, d_);
      if (text && text->empty()) Error(*issuer, "must not be empty");
      if (text) provider.issuer = *text;
    }
    if (auto audiences = map.Take("audiences")) {
      if (auto items = ReadSequence(*audiences, d_)) {
        for (const Field& item : *items) {
          auto text = ReadString(item, d_);
          if (text && text->empty()) Error(item, "must not be empty");
          if (text && !text->empty()) provider.audiences.push_back(*text);
        }
      }
    }
    std::optional<Field> algorithms = map.Take("algorithms");
    bool lists_hmac = false;
    if (algorithms) {
      if (auto items = ReadSequence(*algorithms, d_)) {
        if (items->empty()) Error(*algorithms, "must list at least one algorithm, or be left out");
        for (const Field& item : *items) {
          auto text = ReadString(item, d_);
          if (!text) continue;
          if (*text == "none" || *text == "None" || *text == "NONE") {
            Error(item, "'none' is never accepted: a token must be signed");
          } else if (std::find(kAlgorithms.begin(), kAlgorithms.end(), *text) ==
                     kAlgorithms.end()) {
            Error(item, fmt::format("unknown algorithm '{}' (expected one of: {})", *text,
                                    fmt::join(kAlgorithms, ", ")));
          } else if (std::find(provider.algorithms.begin(), provider.algorithms.end(), *text) !=
                     provider.algorithms.end()) {
            Error(item, fmt::format("algorithm '{}' is listed twice", *text));
          } else {
            lists_hmac = lists_hmac || IsHmacName(*text);
            provider.algorithms.push_back(*text);
          }
        }
      }
    }
    const bool only_hmac = !provider.algorithms.empty() &&
                           std::all_of(provider.algorithms.begin(), provider.algorithms.end(),
                                       [](const std::string& a) { return IsHmacName(a); });
    std::optional<Field> secret = map.Take("secret_file");
    if (secret) {
      if (auto path = ReadString(*secret, d_)) {
        provider.secret_file = *path;
        CheckSecretFile(*secret, *path);
      }
      if (!lists_hmac) {
        Error(*secret,
              "secret_file is only used by HMAC: list HS256 (or HS384, HS512) in "
              "algorithms");
      }
    } else if (lists_hmac) {
      Error(*algorithms,
            "HS256, HS384 and HS512 need the provider's secret_file: HMAC is never "
            "verified with a JWKS key");
    }
    if (auto jwks = map.Take("jwks")) {
      if (auto text = ReadString(*jwks, d_)) {
        provider.jwks = *text;
        CheckJwksSource(*jwks, *text);
      }
    } else if (!only_hmac) {
      Error(field, "missing required key 'jwks' (a file path or an https:// URL)");
    }
    if (auto ca = map.Take("jwks_ca")) {
      if (auto path = ReadString(*ca, d_)) {
        // The file is read when the node starts (and by ferry validate), like certificates.
        provider.jwks_ca = *path;
        if (path->empty()) {
          Error(*ca, "must not be empty (a CA bundle file), or be left out");
        } else if (!provider.jwks.starts_with("https://")) {
          Error(*ca, "jwks_ca verifies an https:// jwks server; this provider's jwks is not one");
        }
      }
    }
    Assign(map, "clock_skew", provider.clock_skew,
           [&](const Field& f) { return ReadDuration(f, d_); });
    Assign(map, "jwks_refresh", provider.jwks_refresh, [&](const Field& f) {
      auto value = Positive(f);
      if (value && *value < seconds(1)) {
        Error(f, "must be at least 1s");
        return std::optional<Duration>();
      }
      return value;
    });
    if (auto cookie = map.Take("cookie")) {
      if (auto text = ReadString(*cookie, d_)) {
        if (!IsHeaderName(*text)) {
          Error(*cookie, fmt::format("invalid cookie name '{}'", *text));
        } else {
          provider.cookie = *text;
        }
      }
    }
    if (auto forward = map.Take("forward_claims")) {
      MapReader claims(*forward, d_);
      for (auto& entry : claims.TakeAll()) {
        auto header = ReadHeaderName(entry.value, d_);
        if (!header) continue;
        if (IsReservedHeader(*header)) {
          Error(entry.value, fmt::format("claim '{}' cannot be forwarded as '{}': that header is "
                                         "Ferry's or the connection's",
                                         entry.key, *header));
          continue;
        }
        provider.forward_claims.emplace_back(entry.key, *header);
      }
    }
    map.Finish();
    if (d_.size() != errors_before) return std::nullopt;
    return provider;
  }

  void CheckSecretFile(const Field& field, const std::string& path) {
    struct stat info {};
    if (path.empty() || ::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) {
      Error(field, fmt::format("cannot read the secret file '{}'", path));
      return;
    }
    if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
      Error(field, fmt::format("the secret file '{}' is readable by others: chmod 600 it", path));
      return;
    }
    if (info.st_size < kMinSecretBytes) {
      Error(field, fmt::format("the secret file '{}' holds under {} bytes: HS256 needs a key at "
                               "least as long as its hash",
                               path, kMinSecretBytes));
    }
  }

  void CheckJwksSource(const Field& field, const std::string& source) {
    if (source.empty()) {
      Error(field, "must not be empty (a file path or an https:// URL)");
    } else if (source.starts_with("http://") || source.starts_with("https://")) {
      if (source.find_first_of("?#") != std::string::npos) {
        Error(field, "a JWKS URL with a query or fragment is not supported");
      } else if (source.substr(0, source.find('/', source.find("://") + 3)).find('@') !=
                 std::string::npos) {
        Error(field, "a JWKS URL with user info is not supported");
      } else if (UrlHost(source).empty()) {
        Error(field, "the JWKS URL has no host");
      } else if (source.starts_with("http://") && !IsLoopbackHost(UrlHost(source))) {
        // Keys fetched in the clear could be swapped on the way; a local agent is the exception.
        Error(field, "a JWKS over http:// is only allowed from a loopback address; use https://");
      }
    } else if (source.find("://") != std::string::npos) {
      Error(field, "a JWKS is a file path or an https:// URL");
    }
  }
};

}  // namespace

Auth ReadAuth(const Field& field, Diagnostics& diags) { return AuthReader(diags).Read(field); }

std::optional<RouteAuth> ReadRouteAuth(const Field& field, Diagnostics& diags) {
  return AuthReader(diags).ReadRoute(field);
}

}  // namespace ferry::config::internal
