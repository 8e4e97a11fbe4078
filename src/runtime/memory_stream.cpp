#include <boost/asio/append.hpp>
#include <cstring>

#include "runtime/stream.hpp"

namespace ferry::runtime {

// One direction of a MemoryStream pair.
struct MemoryStream::Channel {
  std::string bytes;             // written, not yet read
  bool eof = false;              // the writer shut down or closed its side
  bool reader_gone = false;      // the reader closed: writes fail
  MemoryStream* reader = nullptr;
};

namespace {

template <typename Handler, typename... Args>
void Complete(const asio::any_io_executor& ex, Handler handler, Args... args) {
  asio::post(ex, asio::append(std::move(handler), args...));
}

}  // namespace

std::pair<std::unique_ptr<MemoryStream>, std::unique_ptr<MemoryStream>> MemoryStream::Pair(
    executor_type executor) {
  auto a_to_b = std::make_shared<Channel>();
  auto b_to_a = std::make_shared<Channel>();
  auto a = std::make_unique<MemoryStream>(executor, b_to_a, a_to_b);
  auto b = std::make_unique<MemoryStream>(executor, a_to_b, b_to_a);
  return {std::move(a), std::move(b)};
}

MemoryStream::MemoryStream(executor_type executor, std::shared_ptr<Channel> in,
                           std::shared_ptr<Channel> out)
    : Stream(std::move(executor)), in_(std::move(in)), out_(std::move(out)) {
  in_->reader = this;
}

MemoryStream::~MemoryStream() {
  Close();
  read_.reset();
  wait_.reset();
}

void MemoryStream::StartRead(asio::mutable_buffer buffer, IoHandler handler) {
  if (closed_) return Complete(get_executor(), std::move(handler), error_code(asio::error::bad_descriptor), std::size_t{0});
  if (buffer.size() == 0) return Complete(get_executor(), std::move(handler), error_code(), std::size_t{0});
  read_buffer_ = buffer;
  read_.emplace(std::move(handler));  // (Asio 1.81's move assignment of the handler recurses)
  if (!in_->bytes.empty() || in_->eof) return Wake();
  auto slot = read_->get_cancellation_slot();
  if (slot.is_connected()) slot.assign([in = in_](asio::cancellation_type) {
      if (in->reader != nullptr) in->reader->CancelRead(/*from_slot=*/true);
    });
}

void MemoryStream::StartWrite(const ConstBuffers& buffers, IoHandler handler) {
  if (closed_) return Complete(get_executor(), std::move(handler), error_code(asio::error::bad_descriptor), std::size_t{0});
  if (out_->eof || out_->reader_gone) {
    return Complete(get_executor(), std::move(handler), error_code(asio::error::broken_pipe), std::size_t{0});
  }
  std::size_t total = 0;
  for (const asio::const_buffer& b : buffers) {
    out_->bytes.append(static_cast<const char*>(b.data()), b.size());
    total += b.size();
  }
  if (out_->reader != nullptr) out_->reader->Wake();
  Complete(get_executor(), std::move(handler), error_code(), total);
}

void MemoryStream::StartWaitReadable(WaitHandler handler) {
  if (closed_) return Complete(get_executor(), std::move(handler), error_code(asio::error::bad_descriptor));
  wait_.emplace(std::move(handler));
  if (!in_->bytes.empty() || in_->eof) return Wake();
  auto slot = wait_->get_cancellation_slot();
  if (slot.is_connected()) slot.assign([in = in_](asio::cancellation_type) {
      if (in->reader != nullptr) in->reader->CancelWait(/*from_slot=*/true);
    });
}

void MemoryStream::Wake() {
  if (in_->bytes.empty() && !in_->eof) return;
  if (read_) {
    if (auto slot = read_->get_cancellation_slot(); slot.is_connected()) slot.clear();
    if (in_->bytes.empty()) {
      Complete(get_executor(), std::move(*read_), error_code(asio::error::eof), std::size_t{0});
    } else {
      const std::size_t n = std::min(read_buffer_.size(), in_->bytes.size());
      std::memcpy(read_buffer_.data(), in_->bytes.data(), n);
      in_->bytes.erase(0, n);
      Complete(get_executor(), std::move(*read_), error_code(), n);
    }
    read_.reset();
  }
  if (wait_) {
    if (auto slot = wait_->get_cancellation_slot(); slot.is_connected()) slot.clear();
    Complete(get_executor(), std::move(*wait_), error_code());
    wait_.reset();
  }
}

// A slot's handler may not clear its own slot while it runs: from_slot leaves it.
void MemoryStream::CancelRead(bool from_slot) {
  if (!read_) return;
  if (auto slot = read_->get_cancellation_slot(); !from_slot && slot.is_connected()) slot.clear();
  Complete(get_executor(), std::move(*read_), error_code(asio::error::operation_aborted), std::size_t{0});
  read_.reset();
}

void MemoryStream::CancelWait(bool from_slot) {
  if (!wait_) return;
  if (auto slot = wait_->get_cancellation_slot(); !from_slot && slot.is_connected()) slot.clear();
  Complete(get_executor(), std::move(*wait_), error_code(asio::error::operation_aborted));
  wait_.reset();
}

void MemoryStream::cancel(error_code& ec) {
  ec = {};
  CancelRead();
  CancelWait();
}

void MemoryStream::ShutdownSend() {
  if (out_->eof) return;
  out_->eof = true;
  if (out_->reader != nullptr) out_->reader->Wake();
}

void MemoryStream::Close() {
  if (closed_) return;
  ShutdownSend();
  closed_ = true;
  in_->reader_gone = true;
  in_->reader = nullptr;
  in_->bytes.clear();
  CancelRead();
  CancelWait();
}

bool MemoryStream::PeerGone() {
  return (in_->eof && in_->bytes.empty()) || out_->reader_gone;
}

}  // namespace ferry::runtime
