#include "access/api_key_check.hpp"

#include <gtest/gtest.h>

#include <cctype>

namespace ferry::access {
namespace {

config::ApiKeys TwoKeys() {
  config::ApiKeys keys;
  keys.keys.push_back({"billing", Sha256Hex("k-billing")});
  keys.keys.push_back({"reports", Sha256Hex("k-reports")});
  return keys;
}

TEST(Sha256, MatchesTheKnownDigestOfAbc) {
  // FIPS 180-2 example: SHA-256("abc").
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, ParsesHexInEitherCaseAndRefusesTheRest) {
  const std::string hex = Sha256Hex("abc");
  std::string upper = hex;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  ASSERT_TRUE(ParseSha256Hex(hex));
  EXPECT_EQ(*ParseSha256Hex(hex), *ParseSha256Hex(upper));
  EXPECT_EQ(*ParseSha256Hex(hex), Sha256("abc"));
  EXPECT_FALSE(ParseSha256Hex(hex.substr(1)));
  EXPECT_FALSE(ParseSha256Hex(hex + "0"));
  EXPECT_FALSE(ParseSha256Hex(std::string(64, 'g')));
}

TEST(ApiKeyCheck, AcceptsEachConfiguredKeyWithItsName) {
  const ApiKeyCheck check(TwoKeys());
  EXPECT_EQ(check.header(), "x-api-key");
  auto billing = check.Check("k-billing");
  EXPECT_EQ(billing.outcome, ApiKeyCheck::Outcome::kAccepted);
  EXPECT_EQ(billing.name, "billing");
  auto reports = check.Check("k-reports");
  EXPECT_EQ(reports.outcome, ApiKeyCheck::Outcome::kAccepted);
  EXPECT_EQ(reports.name, "reports");
}

TEST(ApiKeyCheck, MissingAndEmptyKeysAreMissing) {
  const ApiKeyCheck check(TwoKeys());
  EXPECT_EQ(check.Check(std::nullopt).outcome, ApiKeyCheck::Outcome::kMissing);
  EXPECT_EQ(check.Check("").outcome, ApiKeyCheck::Outcome::kMissing);
}

TEST(ApiKeyCheck, AWrongKeyOrTheHashItselfIsInvalid) {
  const ApiKeyCheck check(TwoKeys());
  EXPECT_EQ(check.Check("k-billin").outcome, ApiKeyCheck::Outcome::kInvalid);
  EXPECT_EQ(check.Check("K-BILLING").outcome, ApiKeyCheck::Outcome::kInvalid);
  // Whoever reads the config has the hash, which is not a key.
  EXPECT_EQ(check.Check(Sha256Hex("k-billing")).outcome, ApiKeyCheck::Outcome::kInvalid);
  EXPECT_TRUE(check.Check("k-billing x").name.empty());
}

}  // namespace
}  // namespace ferry::access
