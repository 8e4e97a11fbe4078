#include "config/tls_loader.hpp"

#include <fmt/format.h>

namespace ferry::config::internal {

namespace {

// 32 bytes in base64: 43 characters and one '=' of padding.
bool IsBase64Sha256(const std::string& text) {
  if (text.size() != 44 || text[43] != '=') return false;
  for (std::size_t i = 0; i < 43; ++i) {
    const char c = text[i];
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

class TlsReader : public StrictReader {
 public:
  explicit TlsReader(Diagnostics& diags) : StrictReader(diags) {}

  std::optional<ListenerTls> ReadListenerTls(const Field& field) {
    if (field.node.IsScalar()) {
      if (field.node.Scalar() == "mesh") return ListenerTls{.mesh = true};
      Error(field, fmt::format("tls must be mesh or a map with cert and key, got '{}'",
                               field.node.Scalar()));
      return std::nullopt;
    }
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    ListenerTls tls;
    auto cert = map.Take("cert");
    auto key = map.Take("key");
    if (cert || key) {
      if (!cert || !key) {
        Error(field, "cert and key go together");
      } else if (auto pair = ReadPair(*cert, *key)) {
        tls.certificates.push_back(*pair);
      }
    }
    if (auto list = map.Take("certificates")) {
      if (auto items = ReadSequence(*list, d_)) {
        for (const Field& item : *items) {
          MapReader entry(item, d_);
          auto c = Require(entry, item, "cert");
          auto k = Require(entry, item, "key");
          if (c && k) {
            if (auto pair = ReadPair(*c, *k)) tls.certificates.push_back(*pair);
          }
          entry.Finish();
        }
      }
    }
    if (tls.certificates.empty() && map.ok()) {
      Error(field, "tls needs a certificate: cert and key, or certificates: [{cert, key}]");
    }
    Assign(map, "min_version", tls.min_version, [&](const Field& f) { return ReadVersion(f); });
    Assign(map, "ciphers", tls.ciphers, [&](const Field& f) { return NonEmpty(f); });
    Assign(map, "client_ca", tls.client_ca, [&](const Field& f) { return NonEmpty(f); });
    Assign(map, "session_resumption", tls.session_resumption,
           [&](const Field& f) { return ReadBool(f, d_); });
    map.Finish();
    return tls;
  }

  std::optional<ServiceTls> ReadServiceTls(const Field& field) {
    const char* expected =
        "tls must be mesh or a map (ca, server_name, pin_sha256, client_certificate, "
        "min_version)";
    if (field.node.IsScalar()) {
      if (field.node.Scalar() == "mesh") return ServiceTls{.mesh = true};
      Error(field, fmt::format("{}, got '{}'", expected, field.node.Scalar()));
      return std::nullopt;
    }
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    ServiceTls tls;
    Assign(map, "ca", tls.ca, [&](const Field& f) { return NonEmpty(f); });
    if (auto name = map.Take("server_name")) {
      if (auto text = NonEmpty(*name)) {
        if (text->find_first_of(" /") != std::string::npos) {
          Error(*name, fmt::format("server_name '{}' is not a host name or address", *text));
        } else {
          tls.server_name = *text;
        }
      }
    }
    if (auto pins = map.Take("pin_sha256")) {
      if (auto items = ReadSequence(*pins, d_)) {
        if (items->empty()) Error(*pins, "pin_sha256 needs at least one pin (or leave it out)");
        for (const Field& item : *items) {
          auto text = ReadString(item, d_);
          if (!text) continue;
          if (!IsBase64Sha256(*text)) {
            Error(item, fmt::format("'{}' is not a base64 SHA-256 of a public key (44 "
                                    "characters ending in '=')",
                                    *text));
            continue;
          }
          tls.pin_sha256.push_back(*text);
        }
      }
    }
    if (auto client = map.Take("client_certificate")) {
      MapReader pair(*client, d_);
      auto c = Require(pair, *client, "cert");
      auto k = Require(pair, *client, "key");
      if (c && k) tls.client_certificate = ReadPair(*c, *k);
      pair.Finish();
    }
    Assign(map, "min_version", tls.min_version, [&](const Field& f) { return ReadVersion(f); });
    map.Finish();
    return tls;
  }

  std::optional<Mesh> ReadMesh(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    Mesh mesh;
    bool ok = true;
    for (auto [key, out] : {std::pair<const char*, std::string*>{"cert", &mesh.cert},
                            {"key", &mesh.key},
                            {"ca", &mesh.ca}}) {
      auto value = Require(map, field, key);
      auto path = value ? NonEmpty(*value) : std::nullopt;
      ok = ok && path.has_value();
      if (path) *out = *path;
    }
    if (auto renew = map.Take("renew")) mesh.renew = ReadRenewal(*renew);
    map.Finish();
    if (!ok) return std::nullopt;
    return mesh;
  }

 private:
  std::optional<MeshRenewal> ReadRenewal(const Field& field) {
    MapReader map(field, d_);
    if (!map.ok()) return std::nullopt;
    MeshRenewal renew;
    if (auto url = Require(map, field, "url")) {
      if (auto text = ReadString(*url, d_)) {
        if (!text->starts_with("https://")) {
          Error(*url, fmt::format("renew.url '{}' must be an https:// URL", *text));
        } else {
          renew.url = *text;
        }
      }
    }
    Assign(map, "token_file", renew.token_file, [&](const Field& f) { return NonEmpty(f); });
    if (auto service = Require(map, field, "service")) {
      if (auto text = NonEmpty(*service)) renew.service = *text;
    }
    map.Finish();
    return renew;
  }

  std::optional<std::string> NonEmpty(const Field& field) {
    auto text = ReadString(field, d_);
    if (text && text->empty()) {
      Error(field, "must not be empty");
      return std::nullopt;
    }
    return text;
  }

  std::optional<TlsCertificate> ReadPair(const Field& cert, const Field& key) {
    auto c = NonEmpty(cert);
    auto k = NonEmpty(key);
    if (!c || !k) return std::nullopt;
    return TlsCertificate{*c, *k};
  }

  std::optional<TlsVersion> ReadVersion(const Field& field) {
    if (field.node.IsScalar() && field.node.Tag() == "?") {
      // A plain 1.2 is a number to YAML: say how to write it.
      const std::string& text = field.node.Scalar();
      if (text == "1.2" || text == "1.3") {
        Error(field, fmt::format("write the version as a quoted string: \"{}\"", text));
        return std::nullopt;
      }
    }
    auto text = ReadString(field, d_);
    if (!text) return std::nullopt;
    if (*text == "1.2") return TlsVersion::k1_2;
    if (*text == "1.3") return TlsVersion::k1_3;
    Error(field, fmt::format("min_version must be \"1.2\" or \"1.3\", got '{}'", *text));
    return std::nullopt;
  }
};

}  // namespace

std::optional<ListenerTls> ReadListenerTls(const Field& field, Diagnostics& diags) {
  return TlsReader(diags).ReadListenerTls(field);
}

std::optional<ServiceTls> ReadServiceTls(const Field& field, Diagnostics& diags) {
  return TlsReader(diags).ReadServiceTls(field);
}

std::optional<Mesh> ReadMesh(const Field& field, Diagnostics& diags) {
  return TlsReader(diags).ReadMesh(field);
}

}  // namespace ferry::config::internal
