#include "admin/admin_server.hpp"

#include <fmt/format.h>

#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "runtime/deadline.hpp"
#include "runtime/listener.hpp"

namespace ferry::admin {

AdminServer::AdminServer(asio::io_context& io, std::map<std::string, AdminHandler> routes)
    : io_(io), routes_(std::move(routes)) {}

AdminServer::~AdminServer() { Stop(); }

Result<void> AdminServer::Start(const config::Address& listen) {
  auto acceptor = runtime::OpenListener(io_, listen, /*reuse_port=*/false, 128);
  if (!acceptor) return tl::unexpected(acceptor.error());
  acceptor_ = std::make_unique<tcp::acceptor>(std::move(*acceptor));
  asio::co_spawn(io_, AcceptLoop(), asio::detached);
  return Ok();
}

void AdminServer::Stop() {
  if (acceptor_) {
    error_code ignored;
    acceptor_->close(ignored);
  }
}

tcp::endpoint AdminServer::local_endpoint() const {
  error_code ignored;
  return acceptor_ ? acceptor_->local_endpoint(ignored) : tcp::endpoint();
}

Task<void> AdminServer::AcceptLoop() {
  while (acceptor_->is_open()) {
    auto [ec, socket] = co_await acceptor_->async_accept(kNoThrow);
    if (ec) {
      if (!acceptor_->is_open() || ec == asio::error::operation_aborted) break;
      continue;
    }
    asio::co_spawn(io_, Serve(std::move(socket)), asio::detached);
  }
}

AdminResponse AdminServer::Handle(const std::string& method, const std::string& path) const {
  auto it = routes_.find(path);
  if (it == routes_.end()) {
    return {
        404, "application/json",
        fmt::format(
            R"({{"error":{{"code":"not_found","status":404,"message":"no admin endpoint {}"}}}})"
            "\n",
            path)};
  }
  if (method != "GET" && method != "HEAD") {
    return {405, "application/json",
            R"({"error":{"code":"method_not_allowed","status":405,"message":"use GET"}})"
            "\n"};
  }
  return it->second();
}

Task<void> AdminServer::Serve(tcp::socket socket) {
  runtime::Deadline<tcp::socket> deadline(io_, socket);
  std::string in;
  http::Parser parser(http::Parser::Kind::kRequest);
  char buf[4096];
  for (;;) {
    deadline.Arm(std::chrono::seconds(30));
    http::HeadScanner scanner({16 * 1024, 64});
    http::HeadScanner::State state;
    while ((state = scanner.Scan(in)) == http::HeadScanner::State::kIncomplete) {
      auto [ec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
      if (ec) co_return;
      in.append(buf, n);
    }
    if (state != http::HeadScanner::State::kComplete) co_return;
    parser.Reset();
    auto consumed = parser.Feed(std::string_view(in).substr(0, scanner.head_size()));
    if (!consumed || !parser.message_done()) co_return;  // admin requests have no body
    in.erase(0, *consumed);
    const http::RequestHead& req = parser.request();
    AdminResponse r = Handle(req.method, std::string(req.path()));
    const bool keep = req.keep_alive;
    std::string out = fmt::format(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\ncache-control: no-store\r\n"
        "{}\r\n",
        r.status, http::ReasonPhrase(r.status), r.content_type, r.body.size(),
        keep ? "" : "connection: close\r\n");
    if (req.method != "HEAD") out += r.body;
    auto [ec, n] = co_await asio::async_write(socket, asio::buffer(out), kNoThrow);
    if (ec || !keep) break;
  }
  error_code ignored;
  socket.shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace ferry::admin
