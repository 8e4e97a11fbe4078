// Fixed-size I/O buffers recycled per worker, so a busy connection reuses memory and an idle one
// holds none: a connection takes a buffer when bytes are readable and gives it back when it
// has no unparsed bytes left. The pool keeps at most max_free buffers and frees the rest, so a
// burst of connections gives its memory back.
// Thread safety: one pool per worker, used only on that worker's thread.
#pragma once

#include <cstddef>
#include <memory>
#include <utility>
#include <vector>

namespace ferry::runtime {

class BufferPool {
 public:
  static constexpr std::size_t kBufferSize = 16 * 1024;

  explicit BufferPool(std::size_t max_free = 64) : max_free_(max_free) {}

  std::unique_ptr<char[]> Take() {
    if (free_.empty()) return std::unique_ptr<char[]>(new char[kBufferSize]);
    std::unique_ptr<char[]> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void Give(std::unique_ptr<char[]> buffer) {
    if (buffer && free_.size() < max_free_) free_.push_back(std::move(buffer));
  }
  std::size_t free_count() const { return free_.size(); }

 private:
  std::size_t max_free_;
  std::vector<std::unique_ptr<char[]>> free_;
};

}  // namespace ferry::runtime
