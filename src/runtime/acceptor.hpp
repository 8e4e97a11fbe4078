// A listening socket that hands out Streams: with TcpStream, the only place a server meets
// tcp::socket. OpenListener (listener.hpp) binds; an Acceptor takes the bound acceptor over.
// Thread safety: used on the event loop that owns it.
#pragma once

#include <memory>
#include <string>

#include "config/config.hpp"
#include "core/result.hpp"
#include "runtime/asio.hpp"
#include "runtime/stream.hpp"

namespace ferry::runtime {

class Acceptor {
 public:
  explicit Acceptor(tcp::acceptor acceptor);
  // Binds and listens (see OpenListener). Errors: kIo, kInvalidArgument.
  static Result<std::unique_ptr<Acceptor>> Open(asio::io_context& io,
                                                const config::Address& address, bool reuse_port,
                                                int backlog);
  // The next connection. kCancelled once closed; kIo for a failed accept (out of descriptors:
  // the caller pauses and tries again).
  Task<Result<std::unique_ptr<Stream>>> Accept();
  void Close();
  bool is_open() const { return acceptor_.is_open(); }
  // "127.0.0.1:9901" (the port resolved when 0 was asked for).
  std::string local_address() const;
  std::uint16_t local_port() const;

 private:
  tcp::acceptor acceptor_;
};

}  // namespace ferry::runtime
