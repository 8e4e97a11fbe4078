#include "admin/admin_server.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "observability/metric_series.hpp"
#include "runtime/acceptor.hpp"

namespace ferry::admin {
namespace {

// Admin requests are small GETs from operators and scrapers.
server::ServerOptions AdminOptions() {
  server::ServerOptions o;
  o.max_header_bytes = 16 * 1024;
  o.max_headers = 64;
  o.max_body_bytes = 64 * 1024;
  o.header_read_timeout = std::chrono::seconds(30);
  o.idle_timeout = std::chrono::seconds(30);
  o.request_timeout = std::chrono::seconds(30);
  return o;
}

}  // namespace

AdminServer::AdminServer(asio::io_context& io, std::map<std::string, AdminHandler> routes,
                         std::map<std::string, AdminWriteHandler> write_routes)
    : io_(io),
      routes_(std::move(routes)),
      write_routes_(std::move(write_routes)),
      server_(io, AdminOptions(), *this) {}

AdminServer::~AdminServer() { Stop(); }

void AdminServer::SetTls(std::shared_ptr<const tls::ServerContext> context) {
  server::ServerOptions options = AdminOptions();
  options.tls = std::move(context);
  server_.SetOptions(options);
}

Result<void> AdminServer::Start(const config::Address& listen) {
  auto acceptor = runtime::Acceptor::Open(io_, listen, /*reuse_port=*/false, 128);
  if (!acceptor) return tl::unexpected(acceptor.error());
  local_ip_ = listen.host;
  local_port_ = (*acceptor)->local_port();
  server_.Listen(std::move(*acceptor));
  return Ok();
}

void AdminServer::Stop() { server_.Close(); }

tcp::endpoint AdminServer::local_endpoint() const {
  if (local_port_ == 0) return tcp::endpoint();
  error_code ec;
  const auto ip = asio::ip::make_address(local_ip_, ec);
  return ec ? tcp::endpoint() : tcp::endpoint(ip, local_port_);
}

std::string AdminServer::local_address() const {
  return local_ip_.find(':') != std::string::npos ? fmt::format("[{}]:{}", local_ip_, local_port_)
                                                  : fmt::format("{}:{}", local_ip_, local_port_);
}

void AdminServer::ServeConnection(std::unique_ptr<runtime::Stream> stream) {
  server_.Serve(std::move(stream));
}

AdminResponse AdminServer::Handle(std::string_view method, std::string_view path,
                                  std::string_view body) const {
  const auto write = std::find_if(write_routes_.begin(), write_routes_.end(), [&](const auto& r) {
    return path.starts_with(r.first) && path.size() > r.first.size();
  });
  if (write != write_routes_.end()) {
    if (method != "POST") {
      return {405, "application/json", server::ErrorJson(405, "method_not_allowed", "use POST")};
    }
    return write->second(AdminRequest{method, path, body});
  }
  auto it = routes_.find(std::string(path));
  if (it == routes_.end()) {
    return {404, "application/json",
            server::ErrorJson(404, "not_found", fmt::format("no admin endpoint {}", path))};
  }
  if (method != "GET" && method != "HEAD") {
    return {405, "application/json", server::ErrorJson(405, "method_not_allowed", "use GET")};
  }
  return it->second();
}

void AdminServer::HandshakeFailed() {
  if (handshake_failures_ != nullptr) handshake_failures_->Add(metrics_slot_);
}

Task<void> AdminServer::Serve(server::Request& request, server::Response& response) {
  std::string_view body;
  if (request.head().method == "POST") {
    // A failed read is answered by the server (400, 408, 413) once this returns.
    auto read = co_await request.ReadWhole(AdminOptions().max_body_bytes);
    if (!read) co_return;
    body = *read;
  }
  const AdminResponse answer = Handle(request.head().method, request.head().path(), body);
  server::ResponseHead head;
  head.status = answer.status;
  head.headers.Add("content-type", answer.content_type);
  head.headers.Add("cache-control", "no-store");
  co_await response.Send(head, answer.body);
}

}  // namespace ferry::admin
