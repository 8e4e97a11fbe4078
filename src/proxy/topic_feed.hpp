// What a topic route (`topic:` in place of `service:`) reads its events from: the node's bus,
// which reads each topic once and encodes each event once per framing (SSE, WebSocket); every
// connection that streams the topic shares those buffers. The bus implements TopicFeeds
// (src/bus/api/topic_hub.hpp); the proxy only knows this interface (the bus sits above it).
// Threading: TopicFeeds' calls may come from any worker; the answers are posted to the
// caller's own thread through the PostFn it passes, and run only while its TopicClient lives.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/result.hpp"

namespace ferry::proxy {

// One event, framed once for each protocol. Immutable once made.
struct PushEvent {
  std::uint64_t sequence = 0;              // the event's bus sequence (a gap notice: first - 1)
  std::shared_ptr<const std::string> sse;  // "id: N\ndata: ...\n\n"
  std::shared_ptr<const std::string> ws;   // one unmasked WebSocket text frame
};
using PushBatch = std::shared_ptr<const std::vector<PushEvent>>;

// The answer to a catch-up: the stored events after the sequence asked for, oldest first.
struct CatchUp {
  PushBatch events;              // may be empty
  std::optional<PushEvent> gap;  // the resume point was before retention: this notice first
  std::uint64_t last = 0;        // the sequence the client is at once it has `events`
  bool more = false;             // stopped at the byte budget: ask again after `last`
};

// A streaming connection, as the feed sees it. Called on the connection's own thread.
class TopicClient {
 public:
  virtual ~TopicClient() = default;
  // Events as they are appended, in order; a client still catching up ignores them (its next
  // catch-up has them), and one skips those at or below the sequence it is at.
  virtual void OnLive(const PushBatch& batch) = 0;
  // The answer to Subscribe or CatchUp. kNotFound: the topic is gone.
  virtual void OnCatchUp(Result<CatchUp> answer) = 0;
};

class TopicFeeds {
 public:
  using PostFn = std::function<void(std::function<void()>)>;  // runs a task on the client's thread
  virtual ~TopicFeeds() = default;
  // Adds `client` to the topic's live feed and asks for the events after `after` (nullopt: none,
  // the client starts at the newest), at most about `max_bytes` of them. Answers by OnCatchUp.
  // The client leaves the feed when it is destroyed. `thread` names the thread `post` runs on
  // (the worker): the clients of one thread get each live batch through one post.
  virtual void Subscribe(const std::string& topic, std::optional<std::uint64_t> after,
                         std::size_t max_bytes, std::weak_ptr<TopicClient> client, PostFn post,
                         const void* thread) = 0;
  // The next round of a catch-up that answered `more`.
  virtual void CatchUpFrom(const std::string& topic, std::uint64_t after, std::size_t max_bytes,
                           std::weak_ptr<TopicClient> client, PostFn post) = 0;
};

}  // namespace ferry::proxy
