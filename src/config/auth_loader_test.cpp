#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "config/config.hpp"

namespace ferry::config {
namespace {

std::string Routes(const std::string& auth) {
  return R"(
services:
  s: {endpoints: [127.0.0.1:9000]}
listeners:
  - name: l
    listen: 127.0.0.1:0
    routes:
      - {match: {prefix: /}, service: s, auth: {jwt: idp}}
)" + auth;
}

std::string ErrorOf(const std::string& yaml) {
  auto loaded = LoadString(yaml, "t.yaml");
  EXPECT_FALSE(loaded);
  return loaded ? "" : loaded.error().message();
}

TEST(AuthConfig, ReadsAProviderAndTheRouteThatUsesIt) {
  auto loaded = LoadString(Routes(R"(
auth:
  jwt:
    idp:
      issuer: https://idp.example
      audiences: [api]
      jwks: /etc/ferry/jwks.json
      algorithms: [RS256, ES256]
      clock_skew: 30s
      jwks_refresh: 5m
      cookie: session
      forward_claims: {sub: x-user, roles: X-Roles}
)"));
  ASSERT_TRUE(loaded) << loaded.error().message();
  const Config& config = **loaded;
  const JwtProvider& idp = config.auth.jwt.at("idp");
  EXPECT_EQ(idp.name, "idp");
  EXPECT_EQ(idp.issuer, "https://idp.example");
  EXPECT_EQ(idp.audiences, std::vector<std::string>{"api"});
  EXPECT_EQ(idp.algorithms, (std::vector<std::string>{"RS256", "ES256"}));
  EXPECT_EQ(idp.clock_skew, seconds(30));
  EXPECT_EQ(idp.jwks_refresh, std::chrono::minutes(5));
  EXPECT_EQ(idp.cookie, "session");
  const std::vector<std::pair<std::string, std::string>> forward = {{"sub", "x-user"},
                                                                    {"roles", "x-roles"}};
  EXPECT_EQ(idp.forward_claims, forward);
  EXPECT_EQ(config.listeners[0].routes[0].auth->jwt, "idp");
  const std::string json = ToJson(config);
  EXPECT_NE(json.find(R"("auth":{"jwt":"idp"})"), std::string::npos) << json;
  auto again = LoadString(json, "t.json");
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ((*again)->auth, config.auth);
}

TEST(AuthConfig, UnknownProviderIsAnError) {
  EXPECT_NE(ErrorOf(Routes(""))
                .find("listeners[0].routes[0].auth.jwt: unknown JWT provider 'idp' "
                      "(defined under auth.jwt: none)"),
            std::string::npos);
}

TEST(AuthConfig, AlgorithmsAreChecked) {
  const std::string base = "auth: {jwt: {idp: {issuer: i, jwks: /j, algorithms: [";
  EXPECT_NE(ErrorOf(Routes(base + "none]}}}")).find("'none' is never accepted"), std::string::npos);
  EXPECT_NE(ErrorOf(Routes(base + "RS257]}}}")).find("unknown algorithm 'RS257'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Routes(base + "HS256]}}}")).find("need the provider's secret_file"),
            std::string::npos);
}

TEST(AuthConfig, SecretFileMustBePrivateAndLongEnough) {
  const std::string path = ::testing::TempDir() + "/ferry_hs_secret";
  std::ofstream(path) << std::string(40, 'k');
  ::chmod(path.c_str(), 0644);
  const std::string yaml = Routes(
      "auth: {jwt: {idp: {issuer: i, algorithms: [HS256], "
      "secret_file: " +
      path + "}}}");
  EXPECT_NE(ErrorOf(yaml).find("is readable by others"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  auto loaded = LoadString(yaml, "t.yaml");
  ASSERT_TRUE(loaded) << loaded.error().message();
  const std::string json = ToJson(**loaded);
  EXPECT_NE(json.find(path), std::string::npos);
  EXPECT_EQ(json.find(std::string(40, 'k')), std::string::npos);  // the path, never the secret
  std::ofstream(path) << "short";
  EXPECT_NE(ErrorOf(yaml).find("holds under 32 bytes"), std::string::npos);
  std::remove(path.c_str());
}

TEST(AuthConfig, JwksSourcesAreChecked) {
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i}}}")).find("missing required key 'jwks'"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'http://idp.example/j'}}}"))
                .find("only allowed from a loopback address"),
            std::string::npos);
  EXPECT_TRUE(LoadString(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'http://127.0.0.1:1/j'}}}")));
  EXPECT_TRUE(LoadString(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'https://idp.example/j'}}}")));
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'https://idp.example/j?v=1'}}}"))
                .find("query or fragment"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'https://u@idp.example/j'}}}"))
                .find("user info"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'https:///j'}}}")).find("no host"),
            std::string::npos);
}

TEST(AuthConfig, JwksCaGoesWithAnHttpsJwks) {
  const std::string ca = "/etc/ferry/idp-ca.pem";  // read at start, not by the loader
  auto loaded =
      LoadString(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'https://idp.example/j', "
                        "jwks_ca: '" +
                        ca + "'}}}"));
  ASSERT_TRUE(loaded) << loaded.error().message();
  EXPECT_EQ((*loaded)->auth.jwt.at("idp").jwks_ca, ca);
  EXPECT_NE(ToJson(**loaded).find("\"jwks_ca\":\"" + ca + "\""), std::string::npos);
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i, jwks: /j, jwks_ca: '" + ca + "'}}}"))
                .find("jwks_ca verifies an https:// jwks server"),
            std::string::npos);
  EXPECT_NE(ErrorOf(Routes("auth: {jwt: {idp: {issuer: i, jwks: 'https://idp.example/j', "
                           "jwks_ca: ''}}}"))
                .find("must not be empty"),
            std::string::npos);
}

TEST(AuthConfig, ClaimsAreNotForwardedAsFerrysHeaders) {
  EXPECT_NE(
      ErrorOf(
          Routes(
              "auth: {jwt: {idp: {issuer: i, jwks: /j, forward_claims: {sub: x-ferry-caller}}}}"))
          .find("cannot be forwarded as 'x-ferry-caller'"),
      std::string::npos);
}

}  // namespace
}  // namespace ferry::config
