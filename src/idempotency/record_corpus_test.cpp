// Writes the seed corpus of tests/fuzz/idempotency_record_fuzz.cpp when asked: from the
// repository root, run ferry_idempotency_test with FERRY_WRITE_IDEMPOTENCY_CORPUS=1 and
// --gtest_filter='RecordCorpus*'.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "idempotency/record.hpp"

namespace ferry::idempotency {
namespace {

TEST(RecordCorpusTest, WritesSeedCorpusWhenAsked) {
  if (std::getenv("FERRY_WRITE_IDEMPOTENCY_CORPUS") == nullptr) GTEST_SKIP();
  const std::filesystem::path dir = "tests/fuzz/corpus/idempotency_record";
  std::filesystem::create_directories(dir);
  const auto write = [&](const std::string& name, const Record& record) {
    std::ofstream(dir / name, std::ios::binary) << Encode(record);
  };
  Record in_flight;
  in_flight.fingerprint = Fingerprint("POST", "/payments", R"({"amount":42})");
  in_flight.token = 7;
  in_flight.lease_until_ms = 1'800'000'030'000;
  in_flight.expires_at_ms = 1'800'086'400'000;
  write("in-flight", in_flight);
  Record done = in_flight;
  done.state = Record::State::kDone;
  done.response.status = 201;
  done.response.headers = {{"content-type", "application/json"}, {"location", "/payments/1"}};
  done.response.body = R"({"id":"pay-1","result":"charged"})";
  write("done", done);
  write("empty", Record{});
}

}  // namespace
}  // namespace ferry::idempotency
