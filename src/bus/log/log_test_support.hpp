// Helpers for the bus log tests (header only; not part of the library).
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bus/log/fault_injection_file_system.hpp"
#include "bus/log/log.hpp"
#include "bus/log/posix_file_system.hpp"

namespace ferry::bus::testing {

// A fresh directory under $TMPDIR, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern =
        (std::filesystem::path(base ? base : "/tmp") / "ferry-bus-test-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Options for small, fast test logs in `dir`.
inline LogOptions SmallLog(std::string dir, Durability durability = Durability::kBatch) {
  LogOptions options;
  options.dir = std::move(dir);
  options.durability = durability;
  options.segment_bytes = 1024;
  options.index_interval_bytes = 128;
  return options;
}

// A deterministic payload for sequence-like index `i`.
inline std::string Payload(std::uint64_t i, std::size_t size = 40) {
  std::string p = "record-" + std::to_string(i) + "-";
  while (p.size() < size) p.push_back(static_cast<char>('a' + (p.size() + i) % 26));
  return p;
}

// Appends and waits until acknowledged; fails the test on error.
inline std::uint64_t AppendAcked(Log& log, std::string_view payload) {
  auto seq = log.Append(payload);
  EXPECT_TRUE(seq.has_value()) << (seq ? "" : seq.error().message());
  if (!seq) return 0;
  if (log.options().durability == Durability::kBatch) {
    auto r = log.WaitDurable(*seq);
    EXPECT_TRUE(r.has_value()) << (r ? "" : r.error().message());
  }
  return *seq;
}

// Every acknowledged record, from the start.
inline std::vector<LogRecord> ReadAll(const Log& log) {
  auto records = log.Read(0, SIZE_MAX);
  EXPECT_TRUE(records.has_value()) << (records ? "" : records.error().message());
  return records ? std::move(*records) : std::vector<LogRecord>{};
}

}  // namespace ferry::bus::testing
