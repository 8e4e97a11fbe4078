#include "runtime/read_buffer.hpp"

#include <gtest/gtest.h>

namespace ferry::runtime {
namespace {

void Put(ReadBuffer& b, std::string_view s) {
  ASSERT_GE(b.WriteSpace(), s.size());
  std::memcpy(b.WritePtr(), s.data(), s.size());
  b.Commit(s.size());
}

TEST(ReadBuffer, HoldsNoMemoryUntilWrittenAndAfterRelease) {
  BufferPool pool;
  ReadBuffer b(pool);
  EXPECT_EQ(b.capacity(), 0u);
  Put(b, "hello");
  EXPECT_EQ(b.data(), "hello");
  b.Consume(5);
  EXPECT_TRUE(b.empty());
  b.Release();
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(pool.free_count(), 1u);
}

TEST(ReadBuffer, CompactsWhenTheEndIsReached) {
  BufferPool pool;
  ReadBuffer b(pool);
  std::string big(BufferPool::kBufferSize, 'x');
  Put(b, big);
  b.Consume(BufferPool::kBufferSize - 2);
  EXPECT_EQ(b.WriteSpace(), BufferPool::kBufferSize - 2);
  EXPECT_EQ(b.data(), "xx");
}

TEST(ReadBuffer, GrowsUpToTheLimitKeepingBytes) {
  BufferPool pool;
  ReadBuffer b(pool);
  Put(b, std::string(BufferPool::kBufferSize, 'a'));
  EXPECT_TRUE(b.full());
  EXPECT_TRUE(b.Grow(3 * BufferPool::kBufferSize));
  EXPECT_EQ(b.capacity(), 2 * BufferPool::kBufferSize);
  EXPECT_EQ(b.size(), BufferPool::kBufferSize);
  EXPECT_TRUE(b.Grow(3 * BufferPool::kBufferSize));
  EXPECT_FALSE(b.Grow(3 * BufferPool::kBufferSize));
  EXPECT_EQ(pool.free_count(), 1u);  // the pooled buffer went back when it grew
}

TEST(BufferPool, KeepsAtMostMaxFree) {
  BufferPool pool(2);
  auto a = pool.Take(), b = pool.Take(), c = pool.Take();
  pool.Give(std::move(a));
  pool.Give(std::move(b));
  pool.Give(std::move(c));
  EXPECT_EQ(pool.free_count(), 2u);
}

}  // namespace
}  // namespace ferry::runtime
