#include "runtime/connect.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

#include <cerrno>

#include "runtime/deadline.hpp"

namespace ferry::runtime {

Task<Result<std::unique_ptr<Stream>>> Connect(asio::io_context& io, const std::string& ip,
                                              std::uint16_t port, Duration timeout,
                                              IoWatch* watch) {
  error_code parse_error;
  const asio::ip::address address = asio::ip::make_address(ip, parse_error);
  if (parse_error) {
    co_return Fail(ErrorCode::kInvalidArgument, fmt::format("not an IP address: '{}'", ip));
  }
  const tcp::endpoint endpoint(address, port);
  const std::string where =
      address.is_v6() ? fmt::format("[{}]:{}", ip, port) : fmt::format("{}:{}", ip, port);
  tcp::socket socket(io);
  error_code ec;
  bool timed_out = false;
  {
    Deadline<tcp::socket> deadline(io, socket);
    deadline.Arm(timeout);
    if (watch != nullptr) deadline.Watch(watch);
    auto [connect_error] = co_await socket.async_connect(endpoint, kNoThrow);
    ec = connect_error;
    timed_out = deadline.expired();
  }
  if (watch != nullptr && watch->aborted()) {
    co_return Fail(ErrorCode::kCancelled, "connect to " + where + " aborted");
  }
  if (ec) {
    if (timed_out) {
      co_return Fail(ErrorCode::kConnectFailed, fmt::format("connect to {} timed out after {}",
                                                            where, FormatDuration(timeout)));
    }
    if (ec == asio::error::operation_aborted) {
      co_return Fail(ErrorCode::kCancelled, "connect to " + where + " cancelled");
    }
    co_return Fail(ErrorCode::kConnectFailed, "connect to " + where + ": " + ec.message());
  }
  co_return std::unique_ptr<Stream>(std::make_unique<TcpStream>(std::move(socket)));
}

bool IdleConnectionUsable(Stream& stream) {
  auto* tcp_stream = dynamic_cast<TcpStream*>(&stream);
  if (tcp_stream == nullptr) return !stream.PeerGone();
  tcp::socket& socket = tcp_stream->socket();
  if (!socket.is_open()) return false;
  char byte;
  const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n >= 0) return false;  // FIN (0) or stray bytes (> 0)
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

}  // namespace ferry::runtime
