#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>

#include "runtime/stream.hpp"

namespace ferry::runtime {

TcpStream::TcpStream(tcp::socket socket)
    : Stream(socket.get_executor()), socket_(std::move(socket)) {
  tcp_ = &socket_;
  error_code ec;
  const tcp::endpoint peer = socket_.remote_endpoint(ec);
  if (!ec) {
    peer_.ip = peer.address().to_string();
    peer_.port = peer.port();
    peer_.address = peer.address().is_v6() ? fmt::format("[{}]:{}", peer_.ip, peer_.port)
                                            : fmt::format("{}:{}", peer_.ip, peer_.port);
  }
  socket_.set_option(tcp::no_delay(true), ec);
}

TcpStream::~TcpStream() = default;

void TcpStream::StartRead(asio::mutable_buffer buffer, IoHandler handler) {
  socket_.async_read_some(buffer, std::move(handler));
}

void TcpStream::StartWrite(const ConstBuffers& buffers, IoHandler handler) {
  socket_.async_write_some(buffers, std::move(handler));
}

void TcpStream::StartWaitReadable(WaitHandler handler) {
  socket_.async_wait(tcp::socket::wait_read, std::move(handler));
}

void TcpStream::ShutdownSend() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
}

void TcpStream::Close() {
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
}

bool TcpStream::PeerGone() {
  if (!socket_.is_open()) return true;
  char byte;
  const ssize_t n = ::recv(socket_.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

}  // namespace ferry::runtime
