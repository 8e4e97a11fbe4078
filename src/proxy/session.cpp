#include "proxy/session.hpp"

#include <fmt/format.h>

#include "http/head_scanner.hpp"
#include "http/serializer.hpp"
#include "proxy/local_reply.hpp"

namespace ferry::proxy {

Task<void> ServeConnection(WorkerState& worker, std::string listener, tcp::socket socket) {
  Session session(worker, std::move(listener), std::move(socket));
  co_await session.Run();
}

Session::Session(WorkerState& worker, std::string listener, tcp::socket socket)
    : worker_(worker),
      listener_(std::move(listener)),
      socket_(std::move(socket)),
      deadline_(worker.io(), socket_),
      in_(worker.buffers()),
      parser_(http::Parser::Kind::kRequest) {
  error_code ec;
  const tcp::endpoint peer = socket_.remote_endpoint(ec);
  if (!ec) {
    client_ip_ = peer.address().to_string();
    client_address_ = peer.address().is_v6() ? fmt::format("[{}]:{}", client_ip_, peer.port())
                                             : fmt::format("{}:{}", client_ip_, peer.port());
  }
  socket_.set_option(tcp::no_delay(true), ec);
  handle_ = worker_.Register(socket_);
}

Session::~Session() { worker_.Unregister(handle_); }

Task<void> Session::Run() {
  ProxyMetrics* metrics = worker_.metrics();
  metrics->downstream_total.Add(worker_.slot());
  metrics->downstream_active.Add(worker_.slot(), 1);
  for (;;) {
    if (in_.empty()) {
      // Idle: no buffer, no parsed headers and no config snapshot held, only a readiness wait.
      in_.Release();
      if (served_ > 0) parser_.Release();
      handle_->idle = true;
      if (worker_.draining()) break;
      const config::Limits* idle_limits = CurrentLimits();
      if (idle_limits == nullptr) break;  // the listener was removed by a reload
      deadline_.Arm(served_ == 0 ? idle_limits->header_read_timeout : idle_limits->idle_timeout);
      auto [ec] = co_await socket_.async_wait(tcp::socket::wait_read, kNoThrow);
      handle_->idle = false;
      if (ec) break;
    }
    // The snapshot is taken when a request starts, so a reload applies from the next request
    // on every connection, and the exchange keeps the one it started with.
    std::shared_ptr<const Snapshot> snapshot = worker_.snapshot();
    auto listener = snapshot->listeners.find(listener_);
    if (listener == snapshot->listeners.end()) break;  // removed by a reload
    const config::Limits& limits = listener->second.config->limits;
    deadline_.Arm(limits.header_read_timeout);
    const HeadResult head = co_await ReadHead(limits);
    if (head != HeadResult::kReady) break;
    deadline_.Arm(limits.request_timeout);
    const bool keep_alive = co_await Exchange(snapshot, listener->second);
    ++served_;
    if (!keep_alive || worker_.draining()) break;
  }
  deadline_.Disarm();
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_send, ignored);
  socket_.close(ignored);
  metrics->downstream_active.Add(worker_.slot(), -1);
}

// RFC 9112 rules llhttp leaves to its caller: an HTTP/1.1 request has exactly one Host (3.2),
// and Transfer-Encoding in an HTTP/1.0 request is faulty framing (6.1). Two Hosts would let
// Ferry's host matching and the upstream disagree about where a request goes. And a Connection
// line may not name a field that frames or routes the request (RFC 9110 7.6.1 lets a proxy
// drop what Connection names: dropping Content-Length but forwarding the body smuggles it).
const char* Session::CheckFraming(const http::RequestHead& request) {
  int hosts = 0;
  bool connection_names_framing = false;
  request.headers.ForEach([&](const http::Headers::Field& f) {
    if (http::EqualsIgnoreCase(f.name, "host")) {
      ++hosts;
    } else if (http::EqualsIgnoreCase(f.name, "connection") &&
               !http::NamesFramingField(f.value).empty()) {
      connection_names_framing = true;
    }
  });
  if (connection_names_framing) {
    return "Connection names Content-Length, Transfer-Encoding or Host";
  }
  if (hosts > 1) return "more than one Host header";
  if (hosts == 0 && request.version_minor >= 1) return "missing Host header (required in HTTP/1.1)";
  if (request.version_minor == 0 && request.headers.Has("transfer-encoding")) {
    return "Transfer-Encoding in an HTTP/1.0 request";
  }
  return nullptr;
}

const config::Limits* Session::CurrentLimits() const {
  const auto& snapshot = worker_.snapshot();
  auto it = snapshot->listeners.find(listener_);
  return it == snapshot->listeners.end() ? nullptr : &it->second.config->limits;
}

Task<Session::HeadResult> Session::ReadHead(const config::Limits& limits) {
  http::HeadScanner scanner(
      {static_cast<std::size_t>(limits.max_header_bytes), limits.max_headers});
  for (;;) {
    switch (scanner.Scan(in_.data())) {
      case http::HeadScanner::State::kComplete:
        break;
      case http::HeadScanner::State::kTooLarge:
        PrepareReply(ErrorCode::kHeadersTooLarge, reply::kHeadersTooLarge,
                     fmt::format("request head exceeds {} bytes", limits.max_header_bytes),
                     worker_.NewRequestId());
        co_await SendReply(true);
        co_return HeadResult::kReplied;
      case http::HeadScanner::State::kTooManyFields:
        PrepareReply(ErrorCode::kHeadersTooLarge, reply::kHeadersTooLarge,
                     fmt::format("request has more than {} header fields", limits.max_headers),
                     worker_.NewRequestId());
        co_await SendReply(true);
        co_return HeadResult::kReplied;
      case http::HeadScanner::State::kMalformed:
        PrepareReply(ErrorCode::kInvalidArgument, reply::kBadRequest, scanner.error(),
                     worker_.NewRequestId());
        co_await SendReply(true);
        co_return HeadResult::kReplied;
      case http::HeadScanner::State::kIncomplete:
        if (in_.full() && !in_.Grow(limits.max_header_bytes + 4)) {
          PrepareReply(ErrorCode::kHeadersTooLarge, reply::kHeadersTooLarge,
                       "request head too large", worker_.NewRequestId());
          co_await SendReply(true);
          co_return HeadResult::kReplied;
        }
        if (!co_await ReadMore()) {
          if (deadline_.expired() && !in_.empty()) {
            deadline_.Arm(std::chrono::seconds(1));  // a short grace to send the 408
            PrepareReply(ErrorCode::kRequestTimeout, reply::kRequestTimeout,
                         "request head not received in time", worker_.NewRequestId());
            co_await SendReply(true);
            co_return HeadResult::kReplied;
          }
          co_return HeadResult::kClosed;
        }
        continue;
    }
    break;
  }
  parser_.Reset();
  if (scanner.tabs()) parser_.HeadHasTabs();
  auto consumed = parser_.Feed(in_.data().substr(0, scanner.head_size()));
  if (!consumed) {
    PrepareReply(ErrorCode::kInvalidArgument, reply::kBadRequest, consumed.error().message(),
                 worker_.NewRequestId());
    co_await SendReply(true);
    co_return HeadResult::kReplied;
  }
  if (!parser_.head_done()) {
    PrepareReply(ErrorCode::kInvalidArgument, reply::kBadRequest, "incomplete request head",
                 worker_.NewRequestId());
    co_await SendReply(true);
    co_return HeadResult::kReplied;
  }
  in_.Consume(*consumed);
  if (const char* why = CheckFraming(parser_.request())) {
    PrepareReply(ErrorCode::kInvalidArgument, reply::kBadRequest, why, worker_.NewRequestId());
    co_await SendReply(true);
    co_return HeadResult::kReplied;
  }
  co_return HeadResult::kReady;
}

Task<bool> Session::ReadMore() {
  if (deadline_.expired()) co_return false;
  auto [ec, n] =
      co_await socket_.async_read_some(asio::buffer(in_.WritePtr(), in_.WriteSpace()), kNoThrow);
  if (ec) co_return false;
  in_.Commit(n);
  co_return true;
}

Task<bool> Session::WriteToClient(std::string_view data) {
  if (deadline_.expired()) co_return false;
  auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(data), kNoThrow);
  co_return !ec;
}

void Session::PrepareReply(ErrorCode error, std::string_view code, std::string message,
                           std::string request_id) {
  MakeErrorReply(reply_, Error(error, std::move(message)), code, request_id);
  reply_request_id_ = std::move(request_id);
}

Task<bool> Session::SendReply(bool close, bool head_request) {
  worker_.LocalReplyCounter(reply_.code).Add(worker_.slot());
  const std::string response = RenderLocalReply(reply_, reply_request_id_, close, head_request);
  const bool ok = co_await WriteToClient(response);
  co_return ok && !close;
}

}  // namespace ferry::proxy
