// A topic route's stream (docs/realtime.md): the route's bus topic, served to one client as
// Server-Sent Events, or as a WebSocket when the request is an upgrade. The events come from
// the node's feed of the topic (topic_feed.hpp), whose buffers every connection shares; this
// connection only queues pointers to them, up to the route's push.buffer_bytes (past that the
// client is cut and counted: a slow client never slows the feed). Bounded by the route's
// max_stream_duration, the verified JWT's exp and a drain; heartbeats keep it alive.
// Thread safety: the worker's thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/result.hpp"
#include "http/headers.hpp"
#include "proxy/proxy_metrics.hpp"
#include "runtime/asio.hpp"
#include "server/exchange.hpp"

namespace ferry::proxy {

class WorkerState;

struct TopicStreamArgs {
  WorkerState& worker;
  const config::Route& route;
  const RouteSeries& series;
  server::Request& request;
  server::Response& response;
  std::optional<std::chrono::system_clock::time_point> expires;  // the verified JWT's exp
  // Adds the route's response headers (its filters' OnResponse: CORS) to a head about to go.
  std::function<void(int status, http::Headers&)> decorate;
};

struct TopicStreamResult {
  int status = 0;  // 200 (SSE), 101 (WebSocket) or 204; 0: `error` is to be answered
  std::optional<Error> error;
  std::string_view error_code;  // the reply's code (local_reply.hpp) when `error` is set
  std::uint64_t events = 0;     // events written
  std::uint64_t bytes_sent = 0;
  std::string_view ended;  // why Ferry ended it (the access log's mark); empty: the client did
};

Task<TopicStreamResult> ServeTopic(TopicStreamArgs& args);

}  // namespace ferry::proxy
