// The JWKS updater on a fake clock with a fake fetch: when a URL is fetched (start, refresh,
// unknown kid at most once per kRefetchInterval, backoff after failures) and when a file is
// read again (it changed), and that a JWKS that cannot be had keeps the keys loaded before.
#include "auth/jwks_updater.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "auth/provider.hpp"
#include "auth/test_keys.hpp"

namespace ferry::auth {
namespace {

using std::chrono::seconds;

std::string OneKeyJwks(std::string_view kid) {
  static testing::Pkey key = testing::MakeEcKey("P-256");
  return R"({"keys":[)" + testing::PublicJwk(key.get(), R"("kid":")" + std::string(kid) + "\"") +
         "]}";
}

std::string KidOf(const Provider& provider) {
  auto keys = provider.keys();
  return keys && !keys->keys.empty() ? keys->keys[0].kid : "";
}

class FakeFetch {
 public:
  Result<std::string> operator()(const config::JwtProvider&) {
    ++calls;
    if (body.empty()) return Fail(ErrorCode::kUnavailable, "connection refused");
    return body;
  }
  int calls = 0;
  std::string body;
};

config::JwtProvider ProviderConfig(std::string name, std::string jwks) {
  config::JwtProvider config;
  config.name = std::move(name);
  config.issuer = "i";
  config.jwks = std::move(jwks);
  config.jwks_refresh = std::chrono::minutes(10);
  return config;
}

TEST(JwksUpdater, FetchesAUrlWithBackoffRefreshAndRateLimitedRefetch) {
  FakeFetch fetch;
  FakeClock clock;
  JwksUpdater updater([&](const config::JwtProvider& p) { return fetch(p); }, clock);
  auto provider = ProviderFor(ProviderConfig("url-idp", "http://127.0.0.1:1/jwks"));

  updater.RunOnce();  // at start: fails
  EXPECT_EQ(fetch.calls, 1);
  EXPECT_EQ(provider->keys(), nullptr);
  updater.RunOnce();  // backing off: not again at once
  EXPECT_EQ(fetch.calls, 1);
  clock.Advance(seconds(1));
  updater.RunOnce();  // after 1 s; fails again
  EXPECT_EQ(fetch.calls, 2);
  clock.Advance(seconds(1));
  updater.RunOnce();  // the backoff doubled to 2 s
  EXPECT_EQ(fetch.calls, 2);
  fetch.body = OneKeyJwks("a");
  clock.Advance(seconds(1));
  updater.RunOnce();
  EXPECT_EQ(fetch.calls, 3);
  EXPECT_EQ(KidOf(*provider), "a");

  // An unknown kid right after a fetch waits for kRefetchInterval; many wishes make one fetch.
  fetch.body = OneKeyJwks("b");
  provider->WantRefetch();
  updater.RunOnce();
  EXPECT_EQ(fetch.calls, 3);
  clock.Advance(kRefetchInterval);
  provider->WantRefetch();
  provider->WantRefetch();
  updater.RunOnce();
  updater.RunOnce();
  EXPECT_EQ(fetch.calls, 4);
  EXPECT_EQ(KidOf(*provider), "b");

  // A failed refresh keeps the keys; the next is due after jwks_refresh.
  fetch.body = R"({"keys":[]})";  // no usable key: not taken
  clock.Advance(std::chrono::minutes(10));
  updater.RunOnce();
  EXPECT_EQ(fetch.calls, 5);
  EXPECT_EQ(KidOf(*provider), "b");
}

TEST(JwksUpdater, RereadsAFileWhenItChanges) {
  const std::string path = ::testing::TempDir() + "/ferry_jwks_updater_test.json";
  std::filesystem::remove(path);
  FakeFetch fetch;
  FakeClock clock;
  JwksUpdater updater([&](const config::JwtProvider& p) { return fetch(p); }, clock);
  auto provider = ProviderFor(ProviderConfig("file-idp", path));

  updater.RunOnce();  // no file yet
  EXPECT_EQ(provider->keys(), nullptr);
  std::ofstream(path) << OneKeyJwks("a");
  clock.Advance(seconds(1));
  updater.RunOnce();
  EXPECT_EQ(KidOf(*provider), "a");
  std::ofstream(path) << "{broken";  // a bad write keeps the keys
  clock.Advance(seconds(1));
  updater.RunOnce();
  EXPECT_EQ(KidOf(*provider), "a");
  std::ofstream(path) << OneKeyJwks("rotated");
  clock.Advance(seconds(1));
  updater.RunOnce();
  EXPECT_EQ(KidOf(*provider), "rotated");
  EXPECT_EQ(fetch.calls, 0);
  std::filesystem::remove(path);
}

TEST(JwksUpdater, AReloadKeepingTheSourceKeepsTheKeys) {
  auto first = ProviderFor(ProviderConfig("reload-idp", "/some/jwks.json"));
  first->Publish(std::make_shared<const Jwks>(*ParseJwks(OneKeyJwks("a"))));
  auto changed = ProviderConfig("reload-idp", "/some/jwks.json");
  changed.audiences = {"api"};
  auto second = ProviderFor(changed);
  EXPECT_NE(first, second);
  EXPECT_EQ(KidOf(*second), "a");  // no 503 window after a reload that changed the audiences
  auto moved = ProviderFor(ProviderConfig("reload-idp", "/another/jwks.json"));
  EXPECT_EQ(moved->keys(), nullptr);
}

}  // namespace
}  // namespace ferry::auth
