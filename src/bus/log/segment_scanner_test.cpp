#include "bus/log/segment_scanner.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace ferry::bus {
namespace {

// A segment of records with sequences base, base+1, ... and payloads "p<seq>...".
std::string MakeSegment(std::uint64_t base, int count,
                        std::vector<std::uint64_t>* offsets = nullptr) {
  std::string out;
  for (int i = 0; i < count; ++i) {
    if (offsets) offsets->push_back(out.size());
    const std::uint64_t seq = base + i;
    EncodeRecord({.sequence = seq, .timestamp_us = 1000 + i},
                 "p" + std::to_string(seq) + std::string(20 + i % 7, 'x'), &out);
  }
  return out;
}

std::vector<std::uint64_t> Sequences(std::string_view data, std::uint64_t base, SegmentScan* scan) {
  std::vector<std::uint64_t> seqs;
  *scan =
      ScanSegment(data, base, [&](const ScannedRecord& r) { seqs.push_back(r.header.sequence); });
  return seqs;
}

std::string Frame(std::uint64_t sequence, std::string_view payload) {
  std::string out;
  EncodeRecord({.sequence = sequence, .timestamp_us = 1}, payload, &out);
  return out;
}

TEST(SegmentScannerTest, ReadsEveryGoodRecord) {
  const std::string data = MakeSegment(10, 5);
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 10, &scan), (std::vector<std::uint64_t>{10, 11, 12, 13, 14}));
  EXPECT_EQ(scan.valid_end, data.size());
  EXPECT_EQ(scan.tail_bytes, 0u);
  EXPECT_TRUE(scan.damage.empty());
  EXPECT_EQ(scan.first_sequence, 10u);
  EXPECT_EQ(scan.last_sequence, 14u);
}

// A frame cut short at any byte is a torn tail: at the end of the file, or followed by zeros
// written ahead (the write stopped before its end, over them).
TEST(SegmentScannerTest, PartialLastRecordIsATornTail) {
  const std::string whole = MakeSegment(1, 4);
  std::vector<std::uint64_t> offsets;
  MakeSegment(1, 4, &offsets);
  for (std::size_t cut = offsets[3] + 1; cut < whole.size(); ++cut) {
    for (const std::size_t zeros : {0, 500}) {
      const std::string data = whole.substr(0, cut) + std::string(zeros, '\0');
      SegmentScan scan;
      EXPECT_EQ(Sequences(data, 1, &scan).size(), 3u) << cut;
      EXPECT_EQ(scan.valid_end, offsets[3]);
      EXPECT_EQ(scan.tail_bytes, data.size() - offsets[3]);
      EXPECT_TRUE(scan.tail_torn) << cut << " + " << zeros << " zeros";
      EXPECT_EQ(scan.unused_bytes, 0u);
      EXPECT_TRUE(scan.damage.empty());
    }
  }
}

TEST(SegmentScannerTest, DamageInTheMiddleIsReportedAndSkipped) {
  std::vector<std::uint64_t> offsets;
  std::string data = MakeSegment(1, 6, &offsets);
  data[offsets[2] + kRecordHeaderSize + 2] ^= 0x01;  // payload of record 3
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 1, &scan), (std::vector<std::uint64_t>{1, 2, 4, 5, 6}));
  ASSERT_EQ(scan.damage.size(), 1u);
  EXPECT_EQ(scan.damage[0].offset, offsets[2]);
  EXPECT_EQ(scan.damage[0].length, offsets[3] - offsets[2]);
  EXPECT_EQ(scan.damage[0].reason, "payload checksum mismatch");
  EXPECT_EQ(scan.tail_bytes, 0u);
}

TEST(SegmentScannerTest, DamagedHeaderResyncsOnNextMagic) {
  std::vector<std::uint64_t> offsets;
  std::string data = MakeSegment(1, 4, &offsets);
  data[offsets[1] + 9] ^= 0x40;  // sequence field of record 2
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 1, &scan), (std::vector<std::uint64_t>{1, 3, 4}));
  ASSERT_EQ(scan.damage.size(), 1u);
  EXPECT_EQ(scan.damage[0].reason, "header checksum mismatch");
}

TEST(SegmentScannerTest, GarbageBeforeTheFirstRecordIsSkipped) {
  const std::string data = std::string(100, '\x5A') + MakeSegment(1, 2);
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 1, &scan), (std::vector<std::uint64_t>{1, 2}));
  ASSERT_EQ(scan.damage.size(), 1u);
  EXPECT_EQ(scan.damage[0].offset, 0u);
  EXPECT_EQ(scan.damage[0].length, 100u);
}

TEST(SegmentScannerTest, SequenceGoingBackwardsIsDamage) {
  std::string data = MakeSegment(5, 2);
  data += MakeSegment(3, 1);  // an older frame, e.g. copied inside a payload
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 5, &scan), (std::vector<std::uint64_t>{5, 6}));
  EXPECT_GT(scan.tail_bytes, 0u);
  EXPECT_EQ(scan.tail_reason, "sequence number out of order");
}

// Zeros are space the writer wrote ahead for its appends (WritableFile::ZeroAhead): unused,
// not damage.
TEST(SegmentScannerTest, AllZerosIsUnusedSpace) {
  const std::string data(4096, '\0');
  SegmentScan scan;
  EXPECT_TRUE(Sequences(data, 1, &scan).empty());
  EXPECT_EQ(scan.valid_end, 0u);
  EXPECT_EQ(scan.unused_bytes, data.size());
  EXPECT_EQ(scan.tail_bytes, 0u);
  EXPECT_TRUE(scan.damage.empty());
}

TEST(SegmentScannerTest, ZerosAfterTheLastRecordAreUnusedSpace) {
  std::string data = Frame(1, "one") + Frame(2, "two");
  const std::size_t end = data.size();
  data.append(1000, '\0');
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 1, &scan), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(scan.valid_end, end);
  EXPECT_EQ(scan.unused_bytes, 1000u);
  EXPECT_EQ(scan.tail_bytes, 0u);
}

// A whole frame with a bad checksum is rot, not a torn write, zeros after it or not.
TEST(SegmentScannerTest, AWholeFrameWithABadChecksumBeforeZerosIsNotTorn) {
  std::string data = Frame(1, "one") + Frame(2, "two");
  data[data.size() - 1] ^= 0x01;  // the last payload byte
  data.append(500, '\0');
  SegmentScan scan;
  EXPECT_EQ(Sequences(data, 1, &scan), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(scan.tail_reason, "payload checksum mismatch");
  EXPECT_FALSE(scan.tail_torn);
}

// The seed corpus of tests/fuzz/bus_segment_fuzz.cpp: good and damaged segments.
std::map<std::string, std::string> SeedCorpus() {
  std::vector<std::uint64_t> offsets;
  const std::string good = MakeSegment(1, 5, &offsets);
  std::map<std::string, std::string> corpus;
  corpus["good_5_records.seg"] = good;
  corpus["empty.seg"] = "";
  std::string with_empty;
  EncodeRecord({.sequence = 1}, "", &with_empty);
  EncodeRecord({.sequence = 2, .flags = 3}, "", &with_empty);
  corpus["empty_payloads.seg"] = with_empty;
  corpus["torn_tail.seg"] = good.substr(0, offsets[4] + 20);
  corpus["torn_header.seg"] = good.substr(0, offsets[4] + 7);
  std::string flipped = good;
  flipped[offsets[2] + kRecordHeaderSize + 1] ^= 0x08;
  corpus["flipped_payload_byte.seg"] = flipped;
  flipped = good;
  flipped[offsets[1] + 5] ^= 0x80;
  corpus["flipped_length_byte.seg"] = flipped;
  corpus["garbage_between.seg"] =
      good.substr(0, offsets[2]) + std::string(57, '\xF0') + good.substr(offsets[2]);
  corpus["zeros.seg"] = std::string(300, '\0');
  return corpus;
}

std::filesystem::path CorpusDir() {
  return std::filesystem::path(__FILE__).parent_path().parent_path().parent_path().parent_path() /
         "tests" / "fuzz" / "corpus" / "bus_segment";
}

// FERRY_WRITE_BUS_SEGMENT_CORPUS=1 ferry_bus_test --gtest_filter=*SeedCorpus* rewrites the seeds.
TEST(SegmentScannerTest, WritesSeedCorpusWhenAsked) {
  if (std::getenv("FERRY_WRITE_BUS_SEGMENT_CORPUS") == nullptr) GTEST_SKIP();
  std::filesystem::create_directories(CorpusDir());
  for (const auto& [name, bytes] : SeedCorpus()) {
    std::ofstream(CorpusDir() / name, std::ios::binary) << bytes;
  }
}

// Normal builds replay the fuzz corpus (seeds and any crash found since) through the scanner.
TEST(SegmentScannerTest, ReplaysFuzzCorpus) {
  if (!std::filesystem::is_directory(CorpusDir())) GTEST_SKIP() << "no corpus at " << CorpusDir();
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(CorpusDir())) {
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::uint64_t covered = 0;
    const SegmentScan scan = ScanSegment(data, 1, [&](const ScannedRecord& r) {
      EXPECT_GE(r.offset, covered) << entry.path();
      covered = r.offset + kRecordHeaderSize + r.header.length;
    });
    EXPECT_LE(scan.valid_end + scan.tail_bytes, data.size()) << entry.path();
    ++files;
  }
  EXPECT_GT(files, 0);
}

}  // namespace
}  // namespace ferry::bus
