#include "idempotency/record.hpp"

#include <gtest/gtest.h>

namespace ferry::idempotency {
namespace {

Record Done() {
  Record r;
  r.state = Record::State::kDone;
  r.fingerprint = Fingerprint("POST", "/pay", "{}");
  r.token = 42;
  r.lease_until_ms = 1000;
  r.expires_at_ms = 5000;
  r.response.status = 201;
  r.response.headers = {{"content-type", "application/json"}, {"x-a", ""}};
  r.response.body = std::string("{\"id\":1}\0binary", 15);
  return r;
}

TEST(RecordTest, EncodeDecodeRoundTrip) {
  const Record r = Done();
  const auto back = Decode(Encode(r));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, r);
}

TEST(RecordTest, TornOrForeignBytesDoNotDecode) {
  const std::string bytes = Encode(Done());
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    EXPECT_FALSE(Decode(std::string_view(bytes).substr(0, cut)).has_value()) << cut;
  }
  EXPECT_FALSE(Decode(bytes + "x").has_value());
  std::string other_version = bytes;
  other_version[0] = 9;
  EXPECT_FALSE(Decode(other_version).has_value());
}

TEST(RecordTest, FingerprintTellsMethodTargetAndBodyApart) {
  EXPECT_EQ(Fingerprint("POST", "/a", "x"), Fingerprint("POST", "/a", "x"));
  EXPECT_NE(Fingerprint("POST", "/a", "x"), Fingerprint("POST", "/a", "y"));
  EXPECT_NE(Fingerprint("POST", "/a", "x"), Fingerprint("PUT", "/a", "x"));
  EXPECT_NE(Fingerprint("POST", "/ax", ""), Fingerprint("POST", "/a", "x"));
  EXPECT_EQ(Fingerprint("POST", "/a", "x").size(), 64u);
}

TEST(RecordTest, DecideWhatARepeatGets) {
  const std::string fp = Fingerprint("POST", "/pay", "{}");
  EXPECT_EQ(Decide(std::nullopt, fp, 0).outcome, Outcome::kStarted);
  Record r = Done();
  EXPECT_EQ(Decide(r, fp, 2000).outcome, Outcome::kReplay);
  EXPECT_EQ(Decide(r, fp, 2000).response, r.response);
  EXPECT_EQ(Decide(r, "other", 2000).outcome, Outcome::kMismatch);
  EXPECT_EQ(Decide(r, fp, 5000).outcome, Outcome::kStarted);  // expired
  r.state = Record::State::kInFlight;
  EXPECT_EQ(Decide(r, fp, 999).outcome, Outcome::kInFlight);
  EXPECT_EQ(Decide(r, fp, 999).lease_until_ms, 1000);
  EXPECT_EQ(Decide(r, fp, 1000).outcome, Outcome::kOutcomeUnknown);
  EXPECT_EQ(Decide(r, "other", 999).outcome, Outcome::kMismatch);
}

}  // namespace
}  // namespace ferry::idempotency
