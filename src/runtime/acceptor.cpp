#include "runtime/acceptor.hpp"

#include <fmt/format.h>

#include "runtime/listener.hpp"

namespace ferry::runtime {

Acceptor::Acceptor(tcp::acceptor acceptor) : acceptor_(std::move(acceptor)) {}

Result<std::unique_ptr<Acceptor>> Acceptor::Open(asio::io_context& io,
                                                 const config::Address& address, bool reuse_port,
                                                 int backlog) {
  auto acceptor = OpenListener(io, address, reuse_port, backlog);
  if (!acceptor) return tl::unexpected(acceptor.error());
  return std::make_unique<Acceptor>(std::move(*acceptor));
}

Task<Result<std::unique_ptr<Stream>>> Acceptor::Accept() {
  auto [ec, socket] = co_await acceptor_.async_accept(kNoThrow);
  if (ec == asio::error::operation_aborted || !acceptor_.is_open()) {
    co_return Fail(ErrorCode::kCancelled, "listener closed");
  }
  if (ec) co_return Fail(ErrorCode::kIo, "accept: " + ec.message());
  co_return std::unique_ptr<Stream>(std::make_unique<TcpStream>(std::move(socket)));
}

void Acceptor::Close() {
  error_code ignored;
  acceptor_.close(ignored);
}

std::string Acceptor::local_address() const {
  error_code ec;
  const tcp::endpoint ep = acceptor_.local_endpoint(ec);
  if (ec) return "";
  return ep.address().is_v6() ? fmt::format("[{}]:{}", ep.address().to_string(), ep.port())
                              : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

std::uint16_t Acceptor::local_port() const {
  error_code ec;
  const tcp::endpoint ep = acceptor_.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

}  // namespace ferry::runtime
