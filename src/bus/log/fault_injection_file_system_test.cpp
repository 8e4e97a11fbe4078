#include "bus/log/fault_injection_file_system.hpp"

#include <gtest/gtest.h>

namespace ferry::bus {
namespace {

using CrashMode = FaultInjectionFileSystem::CrashMode;

class FaultInjectionFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fs_.CreateDirs("/d")); }

  std::unique_ptr<WritableFile> Open(const std::string& path) {
    auto file = fs_.OpenWritable(path);
    EXPECT_TRUE(file.has_value());
    return file ? std::move(*file) : nullptr;
  }

  FaultInjectionFileSystem fs_{42};
};

TEST_F(FaultInjectionFileSystemTest, CrashDropsBytesWrittenAfterTheLastFsync) {
  auto file = Open("/d/a");
  ASSERT_TRUE(fs_.SyncDir("/d"));
  ASSERT_TRUE(file->Append("synced"));
  ASSERT_TRUE(file->Sync());
  ASSERT_TRUE(file->Append("-lost"));
  EXPECT_EQ(*fs_.Contents("/d/a"), "synced-lost");
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(*fs_.Contents("/d/a"), "synced");
}

TEST_F(FaultInjectionFileSystemTest, CrashDropsAFileWhoseDirectoryWasNotSynced) {
  auto file = Open("/d/a");
  ASSERT_TRUE(file->Append("data"));
  ASSERT_TRUE(file->Sync());
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_FALSE(fs_.Contents("/d/a").has_value());
  EXPECT_TRUE(fs_.List("/d")->empty());
}

TEST_F(FaultInjectionFileSystemTest, CrashUndoesUnsyncedRenameAndRemove) {
  auto a = Open("/d/a");
  auto b = Open("/d/b");
  ASSERT_TRUE(a->Append("A"));
  ASSERT_TRUE(a->Sync());
  ASSERT_TRUE(fs_.SyncDir("/d"));
  ASSERT_TRUE(fs_.Rename("/d/a", "/d/c"));
  ASSERT_TRUE(fs_.Remove("/d/b"));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(*fs_.Contents("/d/a"), "A");
  EXPECT_TRUE(fs_.Contents("/d/b").has_value());
  EXPECT_FALSE(fs_.Contents("/d/c").has_value());
}

TEST_F(FaultInjectionFileSystemTest, KeepRandomPrefixKeepsSyncedBytesAndAPrefixOfTheRest) {
  auto file = Open("/d/a");
  ASSERT_TRUE(fs_.SyncDir("/d"));
  ASSERT_TRUE(file->Append("base"));
  ASSERT_TRUE(file->Sync());
  ASSERT_TRUE(file->Append("0123456789"));
  fs_.SimulateCrash(CrashMode::kKeepRandomPrefix);
  const std::string after = *fs_.Contents("/d/a");
  EXPECT_EQ(after, std::string("base0123456789").substr(0, after.size()));
  EXPECT_GE(after.size(), 4u);
}

TEST_F(FaultInjectionFileSystemTest, ArmedCrashPointFailsThatCallAndEveryLaterOne) {
  auto file = Open("/d/a");
  fs_.ArmCrashAfter(2);
  EXPECT_TRUE(file->Append("one"));
  EXPECT_FALSE(file->Append("two"));
  EXPECT_TRUE(fs_.down());
  auto sync = file->Sync();
  ASSERT_FALSE(sync.has_value());
  EXPECT_EQ(sync.error().code(), ErrorCode::kIo);
  EXPECT_FALSE(fs_.SyncDir("/d"));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_FALSE(fs_.down());
}

TEST_F(FaultInjectionFileSystemTest, InjectedSyncErrorIsEioAndKeepsDataUnsynced) {
  auto file = Open("/d/a");
  ASSERT_TRUE(fs_.SyncDir("/d"));
  ASSERT_TRUE(file->Append("x"));
  fs_.FailNextSyncs(1);
  auto sync = file->Sync();
  ASSERT_FALSE(sync.has_value());
  EXPECT_EQ(sync.error().code(), ErrorCode::kIo);
  EXPECT_EQ(fs_.file_syncs(), 0u);
  EXPECT_TRUE(file->Sync());
  EXPECT_EQ(fs_.file_syncs(), 1u);
}

TEST_F(FaultInjectionFileSystemTest, SpaceLimitWritesWhatFitsThenFailsWithNoSpace) {
  auto file = Open("/d/a");
  fs_.SetSpaceLimit(6);
  ASSERT_TRUE(file->Append("abcd"));
  auto r = file->Append("efgh");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(*fs_.Contents("/d/a"), "abcdef");
  EXPECT_EQ(file->Size(), 6u);
  ASSERT_TRUE(file->Truncate(4));
  EXPECT_EQ(*fs_.Contents("/d/a"), "abcd");
}

// Writes over zeros that were written ahead and synced: a crash keeps the zeros, and with
// kKeepRandomPrefix a prefix of what was written over them.
TEST_F(FaultInjectionFileSystemTest, CrashOverSyncedZerosKeepsTheZerosAndAPrefixOfTheWrite) {
  auto file = Open("/d/a");
  ASSERT_TRUE(fs_.SyncDir("/d"));
  ASSERT_TRUE(file->Append("base"));
  ASSERT_TRUE(file->ZeroAhead(20));
  EXPECT_EQ(file->ZeroedAhead(), 20u);
  ASSERT_TRUE(file->Sync());
  ASSERT_TRUE(file->Append("0123456789"));
  EXPECT_EQ(file->ZeroedAhead(), 10u);
  EXPECT_EQ(*fs_.Contents("/d/a"), "base0123456789" + std::string(10, '\0'));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(*fs_.Contents("/d/a"), "base" + std::string(20, '\0'));

  file = Open("/d/a");  // Size() is the file's length at open: zeros included, as for a real file
  ASSERT_TRUE(file->Truncate(4));
  ASSERT_TRUE(file->ZeroAhead(20));
  ASSERT_TRUE(file->Sync());
  ASSERT_TRUE(file->Append("0123456789"));
  fs_.SimulateCrash(CrashMode::kKeepRandomPrefix);
  const std::string after = *fs_.Contents("/d/a");
  ASSERT_EQ(after.size(), 24u);
  const std::size_t kept = after.find_last_not_of('\0') + 1;
  EXPECT_EQ(after.substr(0, kept), std::string("base0123456789").substr(0, kept));
}

TEST_F(FaultInjectionFileSystemTest, ZerosAheadTakeSpaceAndAppendsOverThemNeedNone) {
  auto file = Open("/d/a");
  fs_.SetSpaceLimit(10);
  ASSERT_TRUE(file->Append("ab"));
  ASSERT_FALSE(file->ZeroAhead(20));  // does not fit: nothing written
  EXPECT_EQ(*fs_.Contents("/d/a"), "ab");
  ASSERT_TRUE(file->ZeroAhead(8));
  fs_.SetSpaceLimit(0);
  ASSERT_TRUE(file->Append("cdefghij"));
  EXPECT_FALSE(file->Append("k"));
  EXPECT_EQ(*fs_.Contents("/d/a"), "abcdefghij");
  // Closing cuts zeros no append used.
  fs_.SetSpaceLimit(std::nullopt);
  ASSERT_TRUE(file->Truncate(3));
  ASSERT_TRUE(file->ZeroAhead(5));
  file.reset();
  EXPECT_EQ(*fs_.Contents("/d/a"), "abc");
  fs_.SetZeroAhead(false);
  file = Open("/d/a");
  EXPECT_FALSE(file->ZeroAhead(5));
  EXPECT_EQ(file->ZeroedAhead(), 0u);
}

TEST_F(FaultInjectionFileSystemTest, CorruptByteChangesCurrentAndSyncedCopies) {
  auto file = Open("/d/a");
  ASSERT_TRUE(fs_.SyncDir("/d"));
  ASSERT_TRUE(file->Append("abc"));
  ASSERT_TRUE(file->Sync());
  ASSERT_TRUE(fs_.CorruptByte("/d/a", 1, 0x01));
  fs_.SimulateCrash(CrashMode::kDropUnsynced);
  EXPECT_EQ(*fs_.Contents("/d/a"), "acc");
}

}  // namespace
}  // namespace ferry::bus
