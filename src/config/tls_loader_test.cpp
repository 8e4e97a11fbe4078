#include "config/tls_loader.hpp"

#include <gtest/gtest.h>

#include "config/config.hpp"

namespace ferry::config {
namespace {

TEST(ListenerTlsConfig, MapWithEveryKey) {
  auto loaded = LoadString(R"(
listeners:
  - name: web
    listen: 127.0.0.1:8443
    tls:
      cert: a.pem
      key: a.key
      certificates: [{cert: b.pem, key: b.key}]
      min_version: "1.3"
      ciphers: ECDHE+AESGCM
      client_ca: clients.pem
      session_resumption: false
)");
  ASSERT_TRUE(loaded) << loaded.error().message();
  const auto& tls = (*loaded)->listeners[0].tls;
  ASSERT_TRUE(tls.has_value());
  EXPECT_FALSE(tls->mesh);
  ASSERT_EQ(tls->certificates.size(), 2u);
  EXPECT_EQ(tls->certificates[0], (TlsCertificate{"a.pem", "a.key"}));
  EXPECT_EQ(tls->certificates[1], (TlsCertificate{"b.pem", "b.key"}));
  EXPECT_EQ(tls->min_version, TlsVersion::k1_3);
  EXPECT_EQ(tls->ciphers, "ECDHE+AESGCM");
  EXPECT_EQ(tls->client_ca, "clients.pem");
  EXPECT_FALSE(tls->session_resumption);
  // ToJson renders it so that it loads back the same.
  const std::string json = ToJson(**loaded);
  auto again = LoadString(json);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->listeners[0].tls, tls);
}

TEST(ListenerTlsConfig, DefaultsAndNoTls) {
  auto loaded = LoadString(R"(
listeners:
  - name: web
    listen: 127.0.0.1:8443
    tls: {cert: a.pem, key: a.key}
  - name: plain
    listen: 127.0.0.1:8080
)");
  ASSERT_TRUE(loaded) << loaded.error().message();
  const auto& tls = (*loaded)->listeners[0].tls;
  ASSERT_TRUE(tls.has_value());
  EXPECT_EQ(tls->min_version, TlsVersion::k1_2);
  EXPECT_TRUE(tls->session_resumption);
  EXPECT_TRUE(tls->ciphers.empty());
  EXPECT_TRUE(tls->client_ca.empty());
  EXPECT_FALSE((*loaded)->listeners[1].tls.has_value());
}

}  // namespace
}  // namespace ferry::config
