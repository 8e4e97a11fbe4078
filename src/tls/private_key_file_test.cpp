#include "tls/private_key_file.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace ferry::tls {
namespace {

struct TempKey {
  TempKey() {
    char dir[] = "/tmp/ferry_key_XXXXXX";
    path = std::string(::mkdtemp(dir)) + "/node.key";
    std::ofstream(path) << "not really a key\n";
  }
  ~TempKey() { std::filesystem::remove_all(std::filesystem::path(path).parent_path()); }
  std::string path;
};

TEST(CheckPrivateKeyFile, OwnerOnlyIsAccepted) {
  TempKey key;
  ::chmod(key.path.c_str(), 0600);
  EXPECT_TRUE(CheckPrivateKeyFile(key.path));
  ::chmod(key.path.c_str(), 0400);
  EXPECT_TRUE(CheckPrivateKeyFile(key.path));
}

TEST(CheckPrivateKeyFile, GroupOrWorldReadableIsRefused) {
  TempKey key;
  for (const mode_t mode : {0640, 0604, 0644, 0660}) {
    ::chmod(key.path.c_str(), mode);
    const Result<void> r = CheckPrivateKeyFile(key.path);
    ASSERT_FALSE(r) << std::oct << mode;
    EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
    EXPECT_NE(r.error().message().find("chmod 600"), std::string::npos);
    EXPECT_NE(r.error().message().find(key.path), std::string::npos);
  }
}

TEST(CheckPrivateKeyFile, MissingFileIsNotFound) {
  const Result<void> r = CheckPrivateKeyFile("/nonexistent/ferry.key");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace ferry::tls
