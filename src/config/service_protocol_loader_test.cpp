#include "config/service_protocol_loader.hpp"

#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config/load_for_test.hpp"

namespace ferry::config {
namespace {

TEST(ServiceProtocolConfig, DefaultsToHttp1) {
  auto config = Load("services: {a: {endpoints: [127.0.0.1:7001]}}\n");
  const Service& a = config->services.at("a");
  EXPECT_EQ(a.protocol, UpstreamProtocol::kHttp1);
  EXPECT_EQ(a.http2.max_streams_per_connection, 100u);
  EXPECT_EQ(a.http2.keepalive_interval, std::chrono::minutes(5));
}

TEST(ServiceProtocolConfig, Http2WithoutTlsIsH2c) {
  auto config = Load(R"(
services:
  a:
    endpoints: [127.0.0.1:7001]
    protocol: http2
    http2: {max_streams_per_connection: 7, keepalive_interval: 0}
)");
  const Service& a = config->services.at("a");
  EXPECT_EQ(a.protocol, UpstreamProtocol::kHttp2);
  EXPECT_FALSE(a.tls.has_value());
  EXPECT_EQ(a.http2.max_streams_per_connection, 7u);
  EXPECT_EQ(a.http2.keepalive_interval, Duration::zero());
  // ToJson renders it so that it loads back the same.
  auto again = LoadString(ToJson(*config));
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->services.at("a"), a);
}

TEST(ServiceProtocolConfig, AutoNeedsTls) {
  auto config = Load(R"(
services:
  a:
    endpoints: [127.0.0.1:7001]
    tls: {server_name: a.internal}
    protocol: auto
)");
  EXPECT_EQ(config->services.at("a").protocol, UpstreamProtocol::kAuto);
  EXPECT_EQ(Errors("services: {a: {endpoints: [127.0.0.1:7001], protocol: auto}}\n"),
            "t.yaml:1:55: services.a.protocol: protocol: auto needs the service's tls: (ALPN "
            "picks h2 or http/1.1); use http2 for h2c with prior knowledge");
}

TEST(ServiceProtocolConfig, Http2BlockOnlyWithHttp2OrAuto) {
  EXPECT_EQ(Errors("services: {a: {endpoints: [127.0.0.1:7001], protocol: http1, http2: {}}}\n"),
            "t.yaml:1:69: services.a.http2: http2: is only used with protocol: http2 or "
            "protocol: auto");
}

}  // namespace
}  // namespace ferry::config
