#include "mesh/spiffe.hpp"

#include <gtest/gtest.h>

namespace ferry::mesh {
namespace {

TEST(SpiffeIdTest, ParsesAServiceId) {
  auto id = ParseSpiffeId("spiffe://example.org/service/orders");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->trust_domain, "example.org");
  EXPECT_EQ(id->path, "/service/orders");
  EXPECT_EQ(ServiceNameOf(*id), "orders");
}

TEST(SpiffeIdTest, ParsesATrustDomainAlone) {
  auto id = ParseSpiffeId("spiffe://mesh.local");
  ASSERT_TRUE(id);
  EXPECT_EQ(id->trust_domain, "mesh.local");
  EXPECT_EQ(id->path, "");
  EXPECT_EQ(ServiceNameOf(*id), "");
}

TEST(SpiffeIdTest, RefusesWhatSpiffeForbids) {
  for (const char* bad :
       {"", "https://example.org/service/a", "spiffe://", "spiffe:///service/a",
        "spiffe://Example.org/service/a", "spiffe://example.org/", "spiffe://example.org//a",
        "spiffe://example.org/service/a/", "spiffe://example.org/./a",
        "spiffe://example.org/service/..", "spiffe://example.org/service/a?x=1",
        "spiffe://example.org/service/a#f", "spiffe://example.org/service/a%20b",
        "spiffe://user@example.org/a", "spiffe://example.org:8443/a"}) {
    EXPECT_FALSE(ParseSpiffeId(bad)) << bad;
  }
}

TEST(SpiffeIdTest, ServiceNameOfNeedsExactlyServiceSlashName) {
  EXPECT_EQ(ServiceNameOf(*ParseSpiffeId("spiffe://d/service/a/b")), "");
  EXPECT_EQ(ServiceNameOf(*ParseSpiffeId("spiffe://d/workload/a")), "");
  EXPECT_EQ(ServiceNameOf(*ParseSpiffeId("spiffe://d/service")), "");
}

TEST(SpiffeIdTest, BuildsIds) {
  EXPECT_EQ(ServiceId("example.org", "orders"), "spiffe://example.org/service/orders");
  EXPECT_EQ(TrustDomainId("example.org"), "spiffe://example.org");
}

TEST(SpiffeIdTest, ValidatesNames) {
  EXPECT_TRUE(IsValidTrustDomain("prod.example-1_x"));
  EXPECT_FALSE(IsValidTrustDomain("UPPER"));
  EXPECT_FALSE(IsValidTrustDomain(""));
  EXPECT_FALSE(IsValidTrustDomain(std::string(256, 'a')));
  EXPECT_TRUE(IsValidServiceName("Orders-v2.api_x"));
  EXPECT_FALSE(IsValidServiceName("a/b"));
  EXPECT_FALSE(IsValidServiceName(".."));
  EXPECT_FALSE(IsValidServiceName(""));
  EXPECT_FALSE(IsValidServiceName(std::string(129, 'a')));
}

TEST(SpiffeIdTest, SpiffeIdOfNoCertificateIsEmpty) { EXPECT_EQ(SpiffeIdOf(nullptr), ""); }

}  // namespace
}  // namespace ferry::mesh
