#include "bus/log/posix_file_system.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "bus/log/log_test_support.hpp"

namespace ferry::bus {
namespace {

using testing::TempDir;

TEST(PosixFileSystemTest, AppendReadSyncAndTruncate) {
  TempDir dir;
  auto& fs = *PosixFileSystem::Default();
  const std::string path = JoinPath(dir.path(), "f");
  auto file = fs.OpenWritable(path);
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE((*file)->Append("hello "));
  ASSERT_TRUE((*file)->Append("world"));
  ASSERT_TRUE((*file)->Sync());
  ASSERT_TRUE(fs.SyncDir(dir.path()));
  EXPECT_EQ((*file)->Size(), 11u);
  EXPECT_EQ(*ReadWholeFile(fs, path), "hello world");
  ASSERT_TRUE((*file)->Truncate(5));
  ASSERT_TRUE((*file)->Append("!"));
  EXPECT_EQ(*ReadWholeFile(fs, path), "hello!");
  EXPECT_EQ(*fs.FileSize(path), 6u);
}

TEST(PosixFileSystemTest, ReopenAppendsAtTheEnd) {
  TempDir dir;
  auto& fs = *PosixFileSystem::Default();
  const std::string path = JoinPath(dir.path(), "f");
  ASSERT_TRUE((*fs.OpenWritable(path))->Append("ab"));
  auto again = fs.OpenWritable(path);
  EXPECT_EQ((*again)->Size(), 2u);
  ASSERT_TRUE((*again)->Append("c"));
  EXPECT_EQ(*ReadWholeFile(fs, path), "abc");
}

// Zeros written ahead make the file longer, not Size(); appends overwrite them; a truncate and
// closing the handle cut them off.
TEST(PosixFileSystemTest, ZeroAheadIsOverwrittenByAppendsAndCutOnClose) {
  TempDir dir;
  auto& fs = *PosixFileSystem::Default();
  const std::string path = JoinPath(dir.path(), "f");
  {
    auto file = *fs.OpenWritable(path);
    ASSERT_TRUE(file->Append("head"));
    ASSERT_TRUE(file->ZeroAhead(100));
    EXPECT_EQ(file->Size(), 4u);
    EXPECT_EQ(file->ZeroedAhead(), 100u);
    EXPECT_EQ(*fs.FileSize(path), 104u);
    EXPECT_EQ(*ReadWholeFile(fs, path), "head" + std::string(100, '\0'));
    ASSERT_TRUE(file->ZeroAhead(50));  // there are 100 already: nothing to write
    EXPECT_EQ(*fs.FileSize(path), 104u);
    ASSERT_TRUE(file->Append("tail"));
    ASSERT_TRUE(file->Sync());
    EXPECT_EQ(file->Size(), 8u);
    EXPECT_EQ(file->ZeroedAhead(), 96u);
    EXPECT_EQ(*ReadWholeFile(fs, path), "headtail" + std::string(96, '\0'));
    // An append longer than the zeros runs on past them.
    const std::string long_one(200, 'x');
    ASSERT_TRUE(file->Append(long_one));
    EXPECT_EQ(file->ZeroedAhead(), 0u);
    EXPECT_EQ(*ReadWholeFile(fs, path), "headtail" + long_one);
    ASSERT_TRUE(file->ZeroAhead(64 * 1024 + 10));  // more than one write of zeros
    EXPECT_EQ(*fs.FileSize(path), 208u + 64 * 1024 + 10);
    ASSERT_TRUE(file->Truncate(4));
    EXPECT_EQ(file->ZeroedAhead(), 0u);
    EXPECT_EQ(*fs.FileSize(path), 4u);
    ASSERT_TRUE(file->ZeroAhead(10));
    ASSERT_TRUE(file->Append("!"));
  }
  EXPECT_EQ(*ReadWholeFile(fs, path), "head!");
}

TEST(PosixFileSystemTest, ListRenameRemove) {
  TempDir dir;
  auto& fs = *PosixFileSystem::Default();
  const std::string sub = JoinPath(dir.path(), "x/y");
  ASSERT_TRUE(fs.CreateDirs(sub));
  ASSERT_TRUE(fs.OpenWritable(JoinPath(sub, "a")).has_value());
  ASSERT_TRUE(fs.Rename(JoinPath(sub, "a"), JoinPath(sub, "b")));
  EXPECT_EQ(*fs.List(sub), std::vector<std::string>{"b"});
  ASSERT_TRUE(fs.Remove(JoinPath(sub, "b")));
  EXPECT_TRUE(fs.List(sub)->empty());
  auto missing = fs.OpenReadable(JoinPath(sub, "b"));
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST(PosixFileSystemTest, ShortReadAtEndOfFile) {
  TempDir dir;
  auto& fs = *PosixFileSystem::Default();
  const std::string path = JoinPath(dir.path(), "f");
  ASSERT_TRUE((*fs.OpenWritable(path))->Append("abc"));
  auto file = fs.OpenReadable(path);
  char buf[8];
  EXPECT_EQ(*(*file)->Read(1, sizeof(buf), buf), 2u);
  EXPECT_EQ(std::string(buf, 2), "bc");
}

}  // namespace
}  // namespace ferry::bus

namespace ferry::bus {
namespace {

TEST(PosixFileSystemTest, CreateDirsMakesEveryMissingLevelAndAcceptsExistingOnes) {
  TempDir dir;
  auto& fs = *PosixFileSystem::Default();
  const std::string deep = JoinPath(dir.path(), "a/b/c/");
  ASSERT_TRUE(fs.CreateDirs(deep));
  EXPECT_TRUE(std::filesystem::is_directory(JoinPath(dir.path(), "a/b/c")));
  ASSERT_TRUE(fs.CreateDirs(deep));  // exists: Ok
  ASSERT_TRUE(fs.CreateDirs(JoinPath(dir.path(), "a/b/d")));
  EXPECT_TRUE(std::filesystem::is_directory(JoinPath(dir.path(), "a/b/d")));
  // A file in the way is a clear error naming the path.
  ASSERT_TRUE(fs.OpenWritable(JoinPath(dir.path(), "file")).has_value());
  auto r = fs.CreateDirs(JoinPath(dir.path(), "file/x"));
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("file/x"), std::string::npos) << r.error().message();
}

}  // namespace
}  // namespace ferry::bus
