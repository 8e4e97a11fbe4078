// The bus side of topic routes (proxy/topic_feed.hpp): one feed per topic per node. A topic's
// feed reads its log once, as the broker says events were appended (Broker::SetTopicListener),
// frames each event once for SSE and once for WebSocket (push_framing.hpp) and posts the
// shared batch to every subscribed connection's thread. Catch-ups (Last-Event-ID) read the
// stored events after the client's sequence, a byte budget at a time.
// Threading: Subscribe and CatchUpFrom may be called from any thread; they post to the bus
// thread, where everything else runs. Clients are held weakly: a connection that ended is
// dropped at the next event.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bus/api/cloudevents.hpp"
#include "bus/broker.hpp"
#include "proxy/topic_feed.hpp"

namespace ferry::bus {

class TopicHub final : public proxy::TopicFeeds {
 public:
  struct Env {
    PostFn post;                                                // to the bus thread
    std::function<Broker*()> broker;                            // null once it closed
    std::function<EventDefaults(const std::string&)> defaults;  // a topic's event defaults
  };
  explicit TopicHub(Env env);
  ~TopicHub() override;

  void Subscribe(const std::string& topic, std::optional<std::uint64_t> after,
                 std::size_t max_bytes, std::weak_ptr<proxy::TopicClient> client, PostFn post,
                 const void* thread) override;
  void CatchUpFrom(const std::string& topic, std::uint64_t after, std::size_t max_bytes,
                   std::weak_ptr<proxy::TopicClient> client, PostFn post) override;

  // Bus thread: the clients subscribed to `topic` now (for tests and stats).
  std::size_t ClientCount(const std::string& topic) const;

 private:
  struct Client {
    std::weak_ptr<proxy::TopicClient> client;
    PostFn post;
  };
  // The clients of one thread: a live batch reaches all of them through one post, which
  // carries `members` (remade only when the clients change).
  struct Group {
    PostFn post;
    std::vector<std::weak_ptr<proxy::TopicClient>> clients;
    std::shared_ptr<const std::vector<std::weak_ptr<proxy::TopicClient>>> members;
  };
  struct Feed {
    std::uint64_t last = 0;  // the newest sequence the feed has read
    std::map<const void*, Group> groups;
    bool listening = false;
  };

  // Bus thread.
  Result<Feed*> Open(const std::string& topic);
  void OnAppended(const std::string& topic);
  void AnswerCatchUp(const std::string& topic, std::optional<std::uint64_t> after,
                     std::size_t max_bytes, const Client& to);

  Env env_;
  std::map<std::string, Feed> feeds_;
  std::shared_ptr<TopicHub*> alive_;  // posted tasks check it
};

}  // namespace ferry::bus
