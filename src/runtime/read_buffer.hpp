// The unread bytes of one connection, in a buffer borrowed from the worker's BufferPool only
// while there are bytes to hold: Release() gives it back when the connection goes idle, so an
// idle keep-alive connection holds no buffer at all. Grows past the pool size only for a large
// message head (up to the caller's limit) and frees that memory on release.
// Thread safety: one per connection direction, on its worker's thread.
#pragma once

#include <cstring>
#include <memory>
#include <string_view>

#include "runtime/buffer_pool.hpp"

namespace ferry::runtime {

class ReadBuffer {
 public:
  explicit ReadBuffer(BufferPool& pool) : pool_(pool) {}
  ~ReadBuffer() { Release(); }
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;

  std::string_view data() const { return {data_.get() + begin_, end_ - begin_}; }
  bool empty() const { return begin_ == end_; }
  std::size_t size() const { return end_ - begin_; }
  std::size_t capacity() const { return capacity_; }
  void Consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // Space to read into: at least one byte, after moving unread bytes to the front if needed.
  char* WritePtr() {
    Ensure();
    if (end_ == capacity_ && begin_ > 0) Compact();
    return data_.get() + end_;
  }
  std::size_t WriteSpace() {
    Ensure();
    if (end_ == capacity_ && begin_ > 0) Compact();
    return capacity_ - end_;
  }
  void Commit(std::size_t n) { end_ += n; }
  bool full() const { return data_ && begin_ == 0 && end_ == capacity_; }

  // Doubles the capacity (up to max) keeping unread bytes; false if already at max.
  bool Grow(std::size_t max) {
    if (capacity_ >= max) return false;
    std::size_t bigger = std::min(max, capacity_ * 2);
    std::unique_ptr<char[]> next(new char[bigger]);
    std::memcpy(next.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
    if (capacity_ == BufferPool::kBufferSize) pool_.Give(std::move(data_));
    data_ = std::move(next);
    capacity_ = bigger;
    return true;
  }

  // Returns the memory to the pool; only legal when empty().
  void Release() {
    if (!data_) return;
    if (capacity_ == BufferPool::kBufferSize) pool_.Give(std::move(data_));
    data_.reset();
    capacity_ = 0;
    begin_ = end_ = 0;
  }

 private:
  void Ensure() {
    if (!data_) {
      data_ = pool_.Take();
      capacity_ = BufferPool::kBufferSize;
    }
  }
  void Compact() {
    std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  BufferPool& pool_;
  std::unique_ptr<char[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace ferry::runtime
