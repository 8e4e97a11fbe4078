#include "bus/engine/sequence_ranges.hpp"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <utility>
#include <vector>

namespace ferry::bus {
namespace {

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

Ranges Of(const SequenceRanges& s) { return {s.ranges().begin(), s.ranges().end()}; }

TEST(SequenceRangesTest, AdjacentAndOverlappingInsertsMerge) {
  SequenceRanges s;
  s.Insert(5);
  s.Insert(7);
  EXPECT_EQ(Of(s), (Ranges{{5, 5}, {7, 7}}));
  s.Insert(6);
  EXPECT_EQ(Of(s), (Ranges{{5, 7}}));
  s.Insert(10, 20);
  s.Insert(1, 11);
  EXPECT_EQ(Of(s), (Ranges{{1, 20}}));
  s.Insert(3, 4);  // inside: no change
  EXPECT_EQ(Of(s), (Ranges{{1, 20}}));
}

TEST(SequenceRangesTest, EraseSplitsAndReportsMembership) {
  SequenceRanges s;
  s.Insert(1, 10);
  EXPECT_TRUE(s.Erase(5));
  EXPECT_FALSE(s.Erase(5));
  EXPECT_FALSE(s.Erase(11));
  EXPECT_EQ(Of(s), (Ranges{{1, 4}, {6, 10}}));
  EXPECT_TRUE(s.Erase(1));
  EXPECT_TRUE(s.Erase(10));
  EXPECT_EQ(Of(s), (Ranges{{2, 4}, {6, 9}}));
  EXPECT_EQ(s.RunFrom(6), 9u);
  EXPECT_EQ(s.RunFrom(7), std::nullopt);
}

TEST(SequenceRangesTest, EraseBelowCutsARangeInTwo) {
  SequenceRanges s;
  s.Insert(1, 3);
  s.Insert(5, 9);
  s.EraseBelow(7);
  EXPECT_EQ(Of(s), (Ranges{{7, 9}}));
  s.EraseBelow(100);
  EXPECT_TRUE(s.empty());
}

TEST(SequenceRangesTest, AgreesWithAPlainSetUnderRandomOperations) {
  std::mt19937_64 rng(7);
  SequenceRanges s;
  std::set<std::uint64_t> model;
  for (int i = 0; i < 5000; ++i) {
    const std::uint64_t a = rng() % 200;
    switch (rng() % 4) {
      case 0: {
        const std::uint64_t b = a + rng() % 5;
        s.Insert(a, b);
        for (std::uint64_t x = a; x <= b; ++x) model.insert(x);
        break;
      }
      case 1:
        ASSERT_EQ(s.Erase(a), model.erase(a) > 0);
        break;
      case 2:
        if (rng() % 20 == 0) {
          s.EraseBelow(a);
          model.erase(model.begin(), model.lower_bound(a));
        }
        break;
      default:
        ASSERT_EQ(s.Contains(a), model.contains(a));
    }
  }
  std::set<std::uint64_t> flattened;
  std::uint64_t previous_last = 0;
  bool first = true;
  for (const auto& [lo, hi] : s.ranges()) {
    ASSERT_LE(lo, hi);
    if (!first) {
      ASSERT_GT(lo, previous_last + 1) << "ranges must be disjoint and not touching";
    }
    first = false;
    previous_last = hi;
    for (std::uint64_t x = lo; x <= hi; ++x) flattened.insert(x);
  }
  EXPECT_EQ(flattened, model);
}

}  // namespace
}  // namespace ferry::bus
