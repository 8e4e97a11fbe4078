#include "bus/api/topic_hub.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "proxy/push_framing.hpp"

namespace ferry::bus {
namespace {

// A live read takes at most this many events at once (the listener runs again for the rest).
constexpr std::size_t kLiveBatch = 256;
constexpr std::size_t kLiveBatchBytes = 256 * 1024;

proxy::PushEvent Frame(const TopicEvent& event, const EventDefaults& defaults) {
  std::string json;
  AppendStreamedEventJson(event.sequence, event.message, defaults, json);
  return proxy::MakePushEvent(event.sequence, json);
}

}  // namespace

TopicHub::TopicHub(Env env) : env_(std::move(env)), alive_(std::make_shared<TopicHub*>(this)) {}

TopicHub::~TopicHub() { *alive_ = nullptr; }

void TopicHub::Subscribe(const std::string& topic, std::optional<std::uint64_t> after,
                         std::size_t max_bytes, std::weak_ptr<proxy::TopicClient> client,
                         PostFn post, const void* thread) {
  env_.post([alive = alive_, topic, after, max_bytes, thread,
             to = Client{std::move(client), std::move(post)}] {
    TopicHub* self = *alive;
    if (self == nullptr || to.client.expired()) return;
    auto feed = self->Open(topic);
    if (!feed) {
      to.post([c = to.client, e = feed.error()] {
        if (auto client = c.lock()) client->OnCatchUp(tl::unexpected(e));
      });
      return;
    }
    Group& group = (*feed)->groups[thread];
    if (!group.post) group.post = to.post;
    group.clients.push_back(to.client);
    group.members.reset();
    self->AnswerCatchUp(topic, after, max_bytes, to);
  });
}

void TopicHub::CatchUpFrom(const std::string& topic, std::uint64_t after, std::size_t max_bytes,
                           std::weak_ptr<proxy::TopicClient> client, PostFn post) {
  env_.post(
      [alive = alive_, topic, after, max_bytes, to = Client{std::move(client), std::move(post)}] {
        TopicHub* self = *alive;
        if (self == nullptr || to.client.expired()) return;
        self->AnswerCatchUp(topic, after, max_bytes, to);
      });
}

std::size_t TopicHub::ClientCount(const std::string& topic) const {
  auto it = feeds_.find(topic);
  if (it == feeds_.end()) return 0;
  std::size_t n = 0;
  for (const auto& [thread, group] : it->second.groups) n += group.clients.size();
  return n;
}

Result<TopicHub::Feed*> TopicHub::Open(const std::string& topic) {
  Broker* broker = env_.broker();
  if (broker == nullptr) return Fail(ErrorCode::kUnavailable, "the bus is stopping");
  auto [it, added] = feeds_.try_emplace(topic);
  Feed& feed = it->second;
  if (!feed.listening) {
    // Where the live feed starts: the newest event now (catch-ups read what came before).
    auto bounds = broker->ReadTopic(topic, ~std::uint64_t{0} - 1, 0, 0);
    if (!bounds) {
      feeds_.erase(it);
      return tl::unexpected(bounds.error());
    }
    feed.last = bounds->last;
    auto listening = broker->SetTopicListener(topic, [this, alive = alive_, topic] {
      if (*alive != nullptr) OnAppended(topic);
    });
    if (!listening) {
      feeds_.erase(it);
      return tl::unexpected(listening.error());
    }
    feed.listening = true;
  }
  return &feed;
}

void TopicHub::AnswerCatchUp(const std::string& topic, std::optional<std::uint64_t> after,
                             std::size_t max_bytes, const Client& to) {
  Broker* broker = env_.broker();
  auto feed_it = feeds_.find(topic);
  if (broker == nullptr || feed_it == feeds_.end()) return;  // stopping: the client times out
  const std::uint64_t live = feed_it->second.last;
  proxy::CatchUp answer;
  auto events = std::make_shared<std::vector<proxy::PushEvent>>();
  // A resume point past the newest event (another node's, or a log that was reset) starts now.
  std::uint64_t from = after ? std::min(*after, live) : live;
  if (from < live) {
    // Only up to what the live feed has read: later events reach the client live.
    auto read = broker->ReadTopic(topic, from, 4096, max_bytes);
    if (!read) {
      to.post([c = to.client, e = read.error()] {
        if (auto client = c.lock()) client->OnCatchUp(tl::unexpected(e));
      });
      return;
    }
    if (from + 1 < read->first) {
      answer.gap = proxy::MakeGapEvent(from, read->first);
      from = read->first - 1;
    }
    const EventDefaults defaults = env_.defaults(topic);
    std::size_t framed = 0;  // the budget counts what the client queues: the SSE framing
    for (const TopicEvent& event : read->events) {
      if (event.sequence > live) break;
      proxy::PushEvent pushed = Frame(event, defaults);
      framed += pushed.sse->size();
      if (!events->empty() && framed > max_bytes) break;
      events->push_back(std::move(pushed));
      from = event.sequence;
    }
    // None up to the live point (or none the log could decode): the client is there.
    if (events->empty()) from = live;
    answer.more = from < live;
  }
  answer.last = from;
  answer.events = std::move(events);
  to.post([c = to.client, answer = std::move(answer)]() mutable {
    if (auto client = c.lock()) client->OnCatchUp(std::move(answer));
  });
}

void TopicHub::OnAppended(const std::string& topic) {
  auto it = feeds_.find(topic);
  Broker* broker = env_.broker();
  if (it == feeds_.end() || broker == nullptr) return;
  Feed& feed = it->second;
  for (auto group = feed.groups.begin(); group != feed.groups.end();) {
    auto& clients = group->second.clients;
    if (std::erase_if(clients, [](const auto& c) { return c.expired(); }) > 0) {
      group->second.members.reset();
    }
    group = clients.empty() ? feed.groups.erase(group) : std::next(group);
  }
  if (feed.groups.empty()) {  // no one streams it now: only keep the live point
    if (auto bounds = broker->ReadTopic(topic, ~std::uint64_t{0} - 1, 0, 0)) {
      feed.last = bounds->last;
    }
    return;
  }
  const EventDefaults defaults = env_.defaults(topic);
  for (;;) {
    auto read = broker->ReadTopic(topic, feed.last, kLiveBatch, kLiveBatchBytes);
    if (!read) {
      spdlog::warn("bus: streaming topic {}: {}", topic, read.error().message());
      return;
    }
    if (read->events.empty()) {
      feed.last = std::max(feed.last, read->last);
      return;
    }
    auto batch = std::make_shared<std::vector<proxy::PushEvent>>();
    batch->reserve(read->events.size());
    for (const TopicEvent& event : read->events) batch->push_back(Frame(event, defaults));
    feed.last = read->events.back().sequence;
    const proxy::PushBatch shared = std::move(batch);
    for (auto& [thread, group] : feed.groups) {
      if (!group.members) {
        group.members =
            std::make_shared<const std::vector<std::weak_ptr<proxy::TopicClient>>>(group.clients);
      }
      group.post([members = group.members, shared] {
        for (const auto& member : *members) {
          if (auto client = member.lock()) client->OnLive(shared);
        }
      });
    }
  }
}

}  // namespace ferry::bus
