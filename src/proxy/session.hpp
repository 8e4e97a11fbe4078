// One client connection: reads requests, proxies each, writes responses, until the client or
// a limit ends it. Requests on a connection are served in order (pipelined requests wait).
// An idle session holds no read buffer: it waits for readability, then borrows one.
// Thread safety: lives on one worker, inside the ServeConnection coroutine frame.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "http/parser.hpp"
#include "proxy/filter.hpp"
#include "proxy/worker_state.hpp"
#include "runtime/deadline.hpp"
#include "runtime/read_buffer.hpp"

namespace ferry::proxy {

Task<void> ServeConnection(WorkerState& worker, std::string listener, tcp::socket socket);

class Session {
 public:
  Session(WorkerState& worker, std::string listener, tcp::socket socket);
  ~Session();
  Task<void> Run();

 private:
  enum class HeadResult { kReady, kClosed, kReplied };
  // nullptr if the head's framing is sound, else why not (the request gets 400).
  static const char* CheckFraming(const http::RequestHead& request);
  // The limits of this session's listener in the worker's current snapshot; null if removed.
  const config::Limits* CurrentLimits() const;
  // Reads until a whole request head is buffered and parsed, or answers the error.
  Task<HeadResult> ReadHead(const config::Limits& limits);
  // Serves one parsed request; returns true if the connection may serve another.
  Task<bool> Exchange(const std::shared_ptr<const Snapshot>& snapshot,
                      const ListenerPlan& listener);
  // A local reply is prepared by a plain call, then sent: GCC 12 miscompiles temporaries with
  // destructors inside co_await expressions, so none are built there. An error reply's status
  // is its code's in the one error table; `code` is its stable JSON code (local_reply.hpp).
  void PrepareReply(ErrorCode error, std::string_view code, std::string message,
                    std::string request_id);
  // Sends the prepared reply (reply_, which a filter may have made); false (the caller closes)
  // when `close` or on a write error. `head_request`: the body is left out.
  Task<bool> SendReply(bool close, bool head_request = false);
  // Reads more client bytes into in_; false on EOF, error or deadline.
  Task<bool> ReadMore();
  Task<bool> WriteToClient(std::string_view data);

  WorkerState& worker_;
  std::string listener_;
  tcp::socket socket_;
  runtime::Deadline<tcp::socket> deadline_;
  runtime::ReadBuffer in_;
  http::Parser parser_;
  std::string client_ip_;
  std::string client_address_;  // ip:port, for the access log
  WorkerState::ConnectionHandle handle_;
  std::uint64_t served_ = 0;  // requests served on this connection
  LocalReply reply_;          // see PrepareReply; reused, so its storage stays
  std::string reply_request_id_;

  friend class ExchangeRunner;
};

}  // namespace ferry::proxy
