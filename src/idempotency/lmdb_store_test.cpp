#include "idempotency/lmdb_store.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace ferry::idempotency {
namespace {

namespace fs = std::filesystem;

class LmdbStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry-idem-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static Record Marker(std::string_view body, std::uint64_t token) {
    Record r;
    r.fingerprint = Fingerprint("POST", "/pay", body);
    r.token = token;
    r.lease_until_ms = 2000;
    r.expires_at_ms = 10000;
    return r;
  }
  static Record Finished(Record r) {
    r.state = Record::State::kDone;
    r.response.status = 201;
    r.response.headers = {{"content-type", "text/plain"}};
    r.response.body = "charged";
    return r;
  }

  fs::path dir_;
};

TEST_F(LmdbStoreTest, FirstRequestStartsRepeatsSeeItsState) {
  auto store = LmdbStore::Open((dir_ / "sub").string());  // created if missing
  ASSERT_TRUE(store) << store.error().message();
  auto& s = **store;
  auto first = s.Begin("k", Marker("a", 1), 1000);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->outcome, Outcome::kStarted);
  EXPECT_EQ(s.Begin("k", Marker("a", 2), 1500)->outcome, Outcome::kInFlight);
  EXPECT_EQ(s.Begin("k", Marker("b", 3), 1500)->outcome, Outcome::kMismatch);
  EXPECT_EQ(s.Begin("k", Marker("a", 4), 2000)->outcome, Outcome::kOutcomeUnknown);
  EXPECT_EQ(s.Begin("other", Marker("a", 5), 1500)->outcome, Outcome::kStarted);

  EXPECT_FALSE(*s.Complete("k", Finished(Marker("a", 2))));  // not the marker's token
  EXPECT_TRUE(*s.Complete("k", Finished(Marker("a", 1))));
  auto repeat = s.Begin("k", Marker("a", 6), 3000);
  ASSERT_TRUE(repeat);
  EXPECT_EQ(repeat->outcome, Outcome::kReplay);
  EXPECT_EQ(repeat->response.status, 201);
  EXPECT_EQ(repeat->response.body, "charged");
  EXPECT_FALSE(*s.Abandon("k", 1));  // a finished record is not a marker
}

TEST_F(LmdbStoreTest, AbandonedMarkerLetsTheClientTryAgain) {
  auto store = LmdbStore::Open(dir_.string());
  ASSERT_TRUE(store);
  EXPECT_EQ((*store)->Begin("k", Marker("a", 1), 1000)->outcome, Outcome::kStarted);
  EXPECT_FALSE(*(*store)->Abandon("k", 99));
  EXPECT_TRUE(*(*store)->Abandon("k", 1));
  EXPECT_EQ((*store)->Begin("k", Marker("a", 2), 1000)->outcome, Outcome::kStarted);
}

TEST_F(LmdbStoreTest, RecordsSurviveReopening) {
  {
    auto store = LmdbStore::Open(dir_.string());
    ASSERT_TRUE(store);
    ASSERT_EQ((*store)->Begin("done", Marker("a", 1), 1000)->outcome, Outcome::kStarted);
    ASSERT_TRUE(*(*store)->Complete("done", Finished(Marker("a", 1))));
    ASSERT_EQ((*store)->Begin("running", Marker("a", 2), 1000)->outcome, Outcome::kStarted);
  }
  auto store = LmdbStore::Open(dir_.string());
  ASSERT_TRUE(store) << store.error().message();
  EXPECT_EQ((*store)->Begin("done", Marker("a", 3), 1500)->outcome, Outcome::kReplay);
  EXPECT_EQ((*store)->Begin("running", Marker("a", 4), 1500)->outcome, Outcome::kInFlight);
  EXPECT_EQ((*store)->Begin("running", Marker("a", 4), 2500)->outcome, Outcome::kOutcomeUnknown);
}

TEST_F(LmdbStoreTest, PurgeRemovesExpiredRecordsOnly) {
  auto store = LmdbStore::Open(dir_.string());
  ASSERT_TRUE(store);
  for (int i = 0; i < 10; ++i) {
    Record r = Marker("a", 1);
    r.expires_at_ms = i < 6 ? 5000 : 20000;  // six adjacent keys expire
    ASSERT_EQ((*store)->Begin("k" + std::to_string(i), r, 1000)->outcome, Outcome::kStarted);
  }
  auto purged = (*store)->Purge(6000);
  ASSERT_TRUE(purged);
  EXPECT_EQ(*purged, 6u);
  EXPECT_EQ(*(*store)->Purge(6000), 0u);
  EXPECT_EQ((*store)->Begin("k7", Marker("a", 2), 1500)->outcome, Outcome::kInFlight);
}

TEST_F(LmdbStoreTest, LongKeysAreStored) {
  auto store = LmdbStore::Open(dir_.string());
  ASSERT_TRUE(store);
  const std::string key(2000, 'x');
  EXPECT_EQ((*store)->Begin(key, Marker("a", 1), 1000)->outcome, Outcome::kStarted);
  EXPECT_EQ((*store)->Begin(key, Marker("a", 2), 1000)->outcome, Outcome::kInFlight);
}

TEST_F(LmdbStoreTest, DamagedEnvironmentIsReportedClearly) {
  fs::create_directories(dir_);
  {
    std::ofstream garbage(dir_ / "data.mdb", std::ios::binary);
    garbage << std::string(16384, 'z');
  }
  auto store = LmdbStore::Open(dir_.string());
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code(), ErrorCode::kIo);
  EXPECT_NE(store.error().message().find(dir_.string()), std::string::npos)
      << store.error().message();
  EXPECT_NE(store.error().message().find("damaged or not an LMDB environment"), std::string::npos)
      << store.error().message();
}

TEST_F(LmdbStoreTest, TornEnvironmentIsReportedClearly) {
  {
    auto store = LmdbStore::Open(dir_.string());
    ASSERT_TRUE(store);
    ASSERT_EQ((*store)->Begin("k", Marker("a", 1), 1000)->outcome, Outcome::kStarted);
  }
  fs::resize_file(dir_ / "data.mdb", 100);  // cut inside the meta pages
  auto store = LmdbStore::Open(dir_.string());
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message().find("cannot open"), std::string::npos)
      << store.error().message();
}

TEST_F(LmdbStoreTest, UnusableDirectoryIsReported) {
  { std::ofstream file(dir_); }  // a file where the directory should be
  auto store = LmdbStore::Open((dir_ / "sub").string());
  ASSERT_FALSE(store);
  EXPECT_NE(store.error().message().find("cannot create the directory"), std::string::npos)
      << store.error().message();
  fs::remove(dir_);
}

}  // namespace
}  // namespace ferry::idempotency
