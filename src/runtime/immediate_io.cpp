#include "runtime/immediate_io.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <array>
#include <cerrno>
#include <optional>
#include <typeinfo>

namespace ferry::runtime {

namespace {

// The socket of a plain TCP stream (a typeid compare: TcpStream is final), or none with
// ec = would_block: other streams read and write only through operations.
std::optional<int> TcpDescriptor(Stream& stream, error_code& ec) {
  ec = {};
  if (typeid(stream) != typeid(TcpStream)) {
    ec = asio::error::would_block;
    return std::nullopt;
  }
  return static_cast<TcpStream&>(stream).socket().native_handle();
}

error_code LastError() {
  const int e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK) return asio::error::would_block;
  return error_code(e, asio::error::get_system_category());
}

}  // namespace

std::size_t WriteNow(Stream& stream, std::span<const asio::const_buffer> buffers, error_code& ec) {
  const std::optional<int> fd = TcpDescriptor(stream, ec);
  if (!fd) return 0;
  std::size_t written = 0;
  std::size_t index = 0;   // the first buffer not wholly written
  std::size_t offset = 0;  // bytes of it written
  while (index < buffers.size()) {
    std::array<iovec, GatherList::kMaxBuffers> iov{};
    std::size_t count = 0;
    std::size_t want = 0;
    for (std::size_t i = index; i < buffers.size() && count < iov.size(); ++i) {
      const std::size_t skip = i == index ? offset : 0;
      if (buffers[i].size() == skip) continue;
      iov[count].iov_base = const_cast<char*>(static_cast<const char*>(buffers[i].data()) + skip);
      iov[count].iov_len = buffers[i].size() - skip;
      want += iov[count].iov_len;
      ++count;
    }
    if (count == 0) break;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    ssize_t n;
    do {
      n = ::sendmsg(*fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      ec = LastError();
      return written;
    }
    written += static_cast<std::size_t>(n);
    // Advance past what was taken.
    std::size_t left = static_cast<std::size_t>(n);
    while (index < buffers.size() && left >= buffers[index].size() - offset) {
      left -= buffers[index].size() - offset;
      offset = 0;
      ++index;
    }
    offset += left;
    if (static_cast<std::size_t>(n) < want) {
      ec = asio::error::would_block;  // the socket is full: the rest waits for an operation
      return written;
    }
  }
  return written;
}

std::size_t ReadNow(Stream& stream, asio::mutable_buffer buffer, error_code& ec) {
  const std::optional<int> fd = TcpDescriptor(stream, ec);
  if (!fd) return 0;
  if (buffer.size() == 0) return 0;
  ssize_t n;
  do {
    n = ::recv(*fd, buffer.data(), buffer.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    ec = LastError();
    return 0;
  }
  if (n == 0) ec = asio::error::eof;
  return static_cast<std::size_t>(n);
}

std::vector<asio::const_buffer> Skip(std::span<const asio::const_buffer> buffers,
                                     std::size_t skip) {
  std::vector<asio::const_buffer> rest;
  for (const auto& b : buffers) {
    if (skip >= b.size()) {
      skip -= b.size();
      continue;
    }
    rest.push_back(b + skip);
    skip = 0;
  }
  return rest;
}

}  // namespace ferry::runtime
