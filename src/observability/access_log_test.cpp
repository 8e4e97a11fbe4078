#include "observability/access_log.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <fstream>
#include <sstream>

namespace ferry::observability {
namespace {

class AccessLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir_template[] = "/tmp/ferry_access_log_XXXXXX";
    ASSERT_NE(::mkdtemp(dir_template), nullptr);
    dir_ = dir_template;
    path_ = dir_ + "/access.log";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }

  std::string ReadLog() const {
    std::ifstream in(path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static AccessLogEntry Entry(std::string_view request_id) {
    AccessLogEntry e;
    e.method = "GET";
    e.path = "/";
    e.status = 200;
    e.request_id = request_id;
    return e;
  }

  MetricsRegistry registry_{2};
  std::string dir_;
  std::string path_;
};

TEST_F(AccessLogTest, BuffersUntilFlush) {
  auto sink = AccessLogSink::Open(path_, registry_);
  ASSERT_TRUE(sink) << sink.error().message();
  AccessLogWriter writer(*sink, 0);
  writer.Write(Entry("a"));
  writer.Write(Entry("b"));
  EXPECT_EQ(ReadLog(), "");
  EXPECT_GT(writer.buffered_bytes(), 0u);

  writer.Flush();
  EXPECT_EQ(writer.buffered_bytes(), 0u);
  std::istringstream lines(ReadLog());
  std::string line;
  std::vector<std::string> ids;
  while (std::getline(lines, line)) {
    ids.emplace_back(boost::json::parse(line).at("request_id").as_string());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b"}));
}

TEST_F(AccessLogTest, WritesOnceTheBufferPassesTheThreshold) {
  auto sink = AccessLogSink::Open(path_, registry_);
  ASSERT_TRUE(sink);
  AccessLogWriter writer(*sink, 0);
  std::size_t buffered = 0;
  for (;;) {
    writer.Write(Entry("x"));
    if (writer.buffered_bytes() < buffered) break;  // this write crossed the threshold
    buffered = writer.buffered_bytes();
    ASSERT_LT(buffered, AccessLogWriter::kFlushThreshold) << "did not write at the threshold";
    ASSERT_EQ(ReadLog(), "") << "wrote before the threshold";
  }
  // The write that crossed the threshold emptied the buffer into the file, whole lines only.
  EXPECT_EQ(writer.buffered_bytes(), 0u);
  const std::string log = ReadLog();
  EXPECT_GE(log.size(), AccessLogWriter::kFlushThreshold);
  EXPECT_EQ(log.back(), '\n');
}

TEST_F(AccessLogTest, AppendsToAnExistingFile) {
  std::ofstream(path_) << "earlier\n";
  {
    AccessLogWriter writer(AccessLogSink::Open(path_, registry_).value(), 0);
    writer.Write(Entry("a"));
  }  // the destructor flushes
  const std::string log = ReadLog();
  EXPECT_EQ(log.rfind("earlier\n{", 0), 0u) << log;
}

TEST_F(AccessLogTest, CountsWriteErrorsAndDropsTheLines) {
  // /dev/full fails every write with ENOSPC.
  auto sink = AccessLogSink::Open("/dev/full", registry_);
  ASSERT_TRUE(sink);
  AccessLogWriter writer(*sink, 1);
  writer.Write(Entry("a"));
  writer.Write(Entry("b"));
  writer.Flush();
  EXPECT_EQ(writer.buffered_bytes(), 0u);
  const std::string text = registry_.RenderPrometheus();
  EXPECT_NE(text.find("\nferry_access_log_write_errors_total 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nferry_access_log_dropped_lines_total 2\n"), std::string::npos) << text;
}

TEST_F(AccessLogTest, OpenFailsWithIoErrorForAMissingDirectory) {
  auto sink = AccessLogSink::Open(dir_ + "/no/such/dir/access.log", registry_);
  ASSERT_FALSE(sink);
  EXPECT_EQ(sink.error().code(), ErrorCode::kIo);
}

TEST_F(AccessLogTest, WritesEveryLineThroughAPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Point "stdout" at the pipe for the duration of Open: the sink checks the fd type there.
  const int saved_stdout = ::dup(STDOUT_FILENO);
  ASSERT_EQ(::dup2(fds[1], STDOUT_FILENO), STDOUT_FILENO);
  auto sink = AccessLogSink::Open("stdout", registry_);
  ASSERT_TRUE(sink);
  std::string lines;
  for (int i = 0; i < 100; ++i) lines += std::string(99, 'a') + "\n";  // 10000 bytes
  (*sink)->WriteLines(lines, 0);
  ::dup2(saved_stdout, STDOUT_FILENO);
  ::close(saved_stdout);
  ::close(fds[1]);
  std::string read_back;
  char buf[65536];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
    read_back.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  EXPECT_EQ(read_back, lines);
}

}  // namespace
}  // namespace ferry::observability
