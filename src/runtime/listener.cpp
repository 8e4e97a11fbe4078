#include "runtime/listener.hpp"

#include <fmt/format.h>
#include <sys/socket.h>

namespace ferry::runtime {

Result<tcp::endpoint> ToEndpoint(const config::Address& address) {
  error_code ec;
  auto ip = asio::ip::make_address(address.host, ec);
  if (ec) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("'{}' is not an IP address", address.host));
  }
  return tcp::endpoint(ip, address.port);
}

Result<tcp::acceptor> OpenListener(asio::io_context& io, const config::Address& address,
                                   bool reuse_port, int backlog) {
  auto endpoint = ToEndpoint(address);
  if (!endpoint) return tl::unexpected(endpoint.error());
  tcp::acceptor acceptor(io);
  error_code ec;
  auto fail = [&](const char* what) {
    return Fail(ErrorCode::kIo,
                fmt::format("listen on {}: {}: {}", address.ToString(), what, ec.message()));
  };
  if (acceptor.open(endpoint->protocol(), ec); ec) return fail("socket");
  if (acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec) return fail("SO_REUSEADDR");
  if (reuse_port) {
    int one = 1;
    if (::setsockopt(acceptor.native_handle(), SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
      ec.assign(errno, boost::system::system_category());
      return fail("SO_REUSEPORT");
    }
  }
  if (acceptor.bind(*endpoint, ec); ec) return fail("bind");
  if (acceptor.listen(backlog, ec); ec) return fail("listen");
  return acceptor;
}

}  // namespace ferry::runtime
