// NatsBroker: the connection, declaring queues, topics and subscriptions (streams and
// consumers), subscription replay, stats, and OpenNatsBroker. The class: nats_broker_impl.hpp.
#include "bus/nats/nats_broker_impl.hpp"

namespace ferry::bus::nats {

Result<void> NatsBroker::Connect() {
  const auto& n = options_.nats;
  if (natsOptions_Create(&opts_) != NATS_OK) return Fail(ErrorCode::kInternal, "NATS options");
  std::vector<const char*> servers;
  for (const auto& s : n.servers) servers.push_back(s.c_str());
  natsOptions_SetServers(opts_, servers.data(), static_cast<int>(servers.size()));
  natsOptions_SetTimeout(opts_, duration_cast<milliseconds>(n.connect_timeout).count());
  natsOptions_SetName(opts_, "ferry-bus");
  natsOptions_SetAllowReconnect(opts_, true);
  natsOptions_SetMaxReconnect(opts_, -1);  // forever: the cluster comes back
  natsOptions_SetReconnectWait(opts_, 250);
  // Publishes, acks and pulls go out at once: libnats' flusher otherwise sleeps 1 ms to batch
  // writes, which a sync publisher waits for on every publish (docs/benchmarks.md).
  natsOptions_SetSendAsap(opts_, true);
  natsOptions_SetDisconnectedCB(opts_, OnDisconnected, shared_.get());
  natsOptions_SetReconnectedCB(opts_, OnReconnected, shared_.get());
  natsOptions_SetClosedCB(opts_, OnClosed, shared_.get());
  if (!n.credentials.empty()) {
    if (auto s = natsOptions_SetUserCredentialsFromFiles(opts_, n.credentials.c_str(), nullptr);
        s != NATS_OK) {
      return Fail(ErrorCode::kInvalidArgument,
                  fmt::format("bus.nats.credentials: {}", StatusText(s)));
    }
  }
  if (auto s = natsConnection_Connect(&nc_, opts_); s != NATS_OK) {
    nc_ = nullptr;
    return Fail(ErrorCode::kUnavailable, fmt::format("NATS: cannot connect to {}: {}",
                                                     fmt::join(n.servers, ", "), StatusText(s)));
  }
  shared_->connected = true;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = kApiWaitMs;
  jo.PublishAsync.AckHandler = OnPubAck;
  jo.PublishAsync.AckHandlerClosure = shared_.get();
  jo.PublishAsync.MaxPending = 65536;
  if (auto s = natsConnection_JetStream(&js_, nc_, &jo); s != NATS_OK) {
    return Fail(ErrorCode::kUnavailable, fmt::format("NATS JetStream: {}", StatusText(s)));
  }
  shared_->on_pub_ack = [this](std::uint64_t token, PubAckResult r) {
    OnPublished(token, std::move(r));
  };
  worker_ = std::make_unique<FetchWorker>();
  return EnsureStream(std::string(kDeadLetterStream), {std::string(kDeadLetterSubjects)},
                      js_LimitsPolicy, StorageOptions{.max_message_bytes = 64ull << 20},
                      /*allow_direct=*/true);
}

Result<void> NatsBroker::CreateQueue(const std::string& name, const QueueOptions& options) {
  Channel channel{QueueStream(name), QueueSubject(name), options.storage};
  if (auto r = EnsureStream(channel.stream, {channel.subject}, js_WorkQueuePolicy, options.storage,
                            false);
      !r) {
    return r;
  }
  channel.publish_rates = RateMeter<1>(options_.clock(), {0});
  auto [it, added] = queues_.try_emplace(name, std::move(channel));
  if (!added) it->second.storage = options.storage;
  SubscriptionOptions sub;
  sub.delivery = options.delivery;
  sub.from_beginning = true;
  return EnsureInbox(Inbox::Queue(name), it->second.stream, std::string(kQueueConsumer),
                     it->second.subject, it->second.subject, sub);
}

Result<void> NatsBroker::CreateTopic(const std::string& name, const TopicOptions& options) {
  Channel channel{TopicStream(name), TopicEventSubject(name), options.storage};
  if (auto r = EnsureStream(channel.stream, {TopicSubjects(name)}, js_LimitsPolicy, options.storage,
                            false);
      !r) {
    return r;
  }
  channel.publish_rates = RateMeter<1>(options_.clock(), {0});
  auto [it, added] = topics_.try_emplace(name, std::move(channel));
  if (!added) {
    it->second.storage = options.storage;
    return Ok();
  }
  // Subscriptions made by PUT live on as durable consumers: take them up again, with the
  // options stored in their description.
  jsConsumerNamesList* names = nullptr;
  jsErrCode code{};
  if (auto s = js_ConsumerNames(&names, js_, it->second.stream.c_str(), nullptr, &code);
      s == NATS_OK && names != nullptr) {
    for (int i = 0; i < names->Count; ++i) {
      auto sub_name = UnescapeName(names->List[i]);
      if (!sub_name) continue;
      jsConsumerInfo* info = nullptr;
      if (js_GetConsumerInfo(&info, js_, it->second.stream.c_str(), names->List[i], nullptr,
                             &code) != NATS_OK) {
        continue;
      }
      SubscriptionOptions sub;
      if (info->Config != nullptr && info->Config->Description != nullptr) {
        if (auto bytes = Unhex(info->Config->Description)) {
          if (auto decoded = DecodeSubscriptionOptions(*bytes)) sub = *decoded;
        }
      }
      jsConsumerInfo_Destroy(info);
      (void)OpenSubscription(name, *sub_name, sub, /*create=*/false);
    }
    jsConsumerNamesList_Destroy(names);
  } else if (s != NATS_OK && s != NATS_NOT_FOUND) {
    return ApiError("list consumers", s, code);
  }
  return Ok();
}

Result<void> NatsBroker::CreateSubscription(const std::string& topic, const std::string& name,
                                            const SubscriptionOptions& options) {
  if (!topics_.contains(topic)) return Fail(ErrorCode::kNotFound, "unknown topic " + topic);
  return OpenSubscription(topic, name, options, /*create=*/true);
}

void NatsBroker::DeleteSubscription(const std::string& topic, const std::string& name,
                                    DoneCallback done) {
  auto it = inboxes_.find(Inbox::Subscription(topic, name).ToString());
  if (it == inboxes_.end()) {
    return Post([done = std::move(done), topic, name] {
      done(Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name)));
    });
  }
  auto state = it->second;
  inboxes_.erase(it);
  DropReceipts(*state);
  jsErrCode code{};
  auto s = js_DeleteConsumer(js_, state->stream.c_str(), state->consumer.c_str(), nullptr, &code);
  Result<void> result = Ok();
  if (s == NATS_OK || code == JSConsumerNotFoundErr) {
    // Its dead letters go with it (a new subscription of the name starts empty).
    jsOptions po;
    jsOptions_Init(&po);
    const std::string subject = DeadLetterSubject(topic, name);
    po.Stream.Purge.Subject = subject.c_str();
    s = js_PurgeStream(js_, std::string(kDeadLetterStream).c_str(), &po, &code);
    if (s != NATS_OK) result = ApiError("purge dead letters", s, code);
  } else {
    result = ApiError("delete consumer", s, code);
  }
  Post([done = std::move(done), result = std::move(result)] { done(result); });
}

void NatsBroker::WhenSubscriptionStored(const std::string& topic, const std::string& name,
                                        DoneCallback done) {
  // The consumer was created (replicated) before CreateSubscription returned.
  const bool known = inboxes_.contains(Inbox::Subscription(topic, name).ToString());
  Post([done = std::move(done), known, topic, name] {
    if (!known) {
      return done(
          Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name)));
    }
    done(Ok());
  });
}

Result<std::vector<std::string>> NatsBroker::Subscriptions(const std::string& topic) const {
  if (!topics_.contains(topic)) return Fail(ErrorCode::kNotFound, "unknown topic " + topic);
  std::vector<std::string> out;
  for (const auto& [key, state] : inboxes_) {
    if (state->inbox.topic == topic) out.push_back(state->inbox.name);
  }
  return out;
}

Result<void> NatsBroker::ReplaySubscription(const std::string& topic, const std::string& name,
                                            std::uint64_t sequence) {
  return RestartSubscription(topic, name, js_DeliverByStartSequence,
                             std::max<std::uint64_t>(sequence, 1), 0);
}

Result<void> NatsBroker::ReplaySubscriptionFrom(const std::string& topic, const std::string& name,
                                                BusTime time) {
  return RestartSubscription(topic, name, js_DeliverByStartTime, 0,
                             duration_cast<nanoseconds>(time.time_since_epoch()).count());
}

void NatsBroker::SampleRates() {
  const BusTime now = options_.clock();
  for (auto* channels : {&queues_, &topics_}) {
    for (auto& [name, channel] : *channels) channel.publish_rates.Sample(now, {channel.published});
  }
  for (const auto& [key, state] : inboxes_) state->rates.Sample(now, RateCounts(*state));
}

Result<QueueStats> NatsBroker::GetQueueStats(const std::string& queue) const {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return Fail(ErrorCode::kNotFound, "unknown queue " + queue);
  auto state = Find(Inbox::Queue(queue));
  if (!state) return Fail(ErrorCode::kNotFound, "unknown queue " + queue);
  QueueStats out;
  out.inbox = InboxStatsOf(*state);
  out.inbox.published = it->second.published;
  out.inbox.duplicates = it->second.duplicates;
  out.inbox.rates.publish =
      it->second.publish_rates.PerSecond(options_.clock(), {it->second.published})[0];
  out.storage.push_back(StreamStats(it->second.stream));
  return out;
}

Result<TopicStats> NatsBroker::GetTopicStats(const std::string& topic) const {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return Fail(ErrorCode::kNotFound, "unknown topic " + topic);
  TopicStats out;
  out.published = it->second.published;
  out.duplicates = it->second.duplicates;
  out.publish_rate =
      it->second.publish_rates.PerSecond(options_.clock(), {it->second.published})[0];
  out.storage.push_back(StreamStats(it->second.stream));
  for (const auto& [key, state] : inboxes_) {
    if (state->inbox.topic != topic) continue;
    out.subscriptions.push_back({state->inbox.name, InboxStatsOf(*state), {}});
  }
  return out;
}

Result<SubscriptionStats> NatsBroker::GetSubscriptionStats(const std::string& topic,
                                                           const std::string& name) const {
  auto state = Find(Inbox::Subscription(topic, name));
  if (!state)
    return Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name));
  return SubscriptionStats{name, InboxStatsOf(*state), {}};
}

Result<SubscriptionOptions> NatsBroker::GetSubscriptionOptions(const std::string& topic,
                                                               const std::string& name) const {
  auto state = Find(Inbox::Subscription(topic, name));
  if (!state)
    return Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name));
  return state->options;
}

void NatsBroker::NotifyDestination(Destination::Kind kind, const std::string& name) {
  for (const auto& [key, state] : inboxes_) {
    const bool match = kind == Destination::Kind::kQueue
                           ? state->inbox.is_queue() && state->inbox.name == name
                           : state->inbox.topic == name;
    if (match) Notify(state);
  }
}

Result<void> NatsBroker::EnsureStream(const std::string& name,
                                      const std::vector<std::string>& subjects,
                                      jsRetentionPolicy retention, const StorageOptions& storage,
                                      bool allow_direct) {
  std::vector<const char*> subject_ptrs;
  for (const auto& s : subjects) subject_ptrs.push_back(s.c_str());
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = name.c_str();
  cfg.Subjects = subject_ptrs.data();
  cfg.SubjectsLen = static_cast<int>(subject_ptrs.size());
  cfg.Retention = retention;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = options_.nats.replicas;
  cfg.Discard = js_DiscardNew;  // a full queue or topic refuses publishes (429), as embedded
  cfg.MaxBytes = storage.max_bytes == 0 ? -1 : static_cast<std::int64_t>(storage.max_bytes);
  cfg.MaxAge = Nanos(storage.max_age);
  // The duplicate window: dedupe_window (0: the shortest JetStream takes), never over MaxAge.
  std::int64_t window =
      std::max<std::int64_t>(Nanos(options_.dedupe_window), Nanos(milliseconds(100)));
  if (cfg.MaxAge > 0) window = std::min(window, cfg.MaxAge);
  cfg.Duplicates = window;
  cfg.AllowDirect = allow_direct;
  jsStreamInfo* info = nullptr;
  jsErrCode code{};
  auto s = js_AddStream(&info, js_, &cfg, nullptr, &code);
  if (s != NATS_OK && code == JSStreamNameExistErr) {
    s = js_UpdateStream(&info, js_, &cfg, nullptr, &code);
  }
  if (info != nullptr) jsStreamInfo_Destroy(info);
  if (s != NATS_OK) return ApiError("stream " + name, s, code);
  return Ok();
}

Result<void> NatsBroker::OpenSubscription(const std::string& topic, const std::string& name,
                                          const SubscriptionOptions& options, bool create) {
  const Channel& channel = topics_.at(topic);
  if (auto r =
          EnsureInbox(Inbox::Subscription(topic, name), channel.stream, SubscriptionConsumer(name),
                      TopicSubjects(topic), TopicReplaySubject(topic, name), options, create);
      !r) {
    return r;
  }
  return Ok();
}

jsConsumerConfig NatsBroker::ConsumerConfig(const InboxState& state,
                                            const std::string& description) {
  jsConsumerConfig cc;
  jsConsumerConfig_Init(&cc);
  cc.Durable = state.consumer.c_str();
  cc.Description = description.c_str();
  cc.AckPolicy = js_AckExplicit;
  cc.AckWait = Nanos(state.options.delivery.lease);
  cc.MaxDeliver = -1;  // Ferry counts deliveries and dead-letters (docs/bus.md)
  cc.FilterSubject = state.filter_subject.c_str();
  cc.MaxAckPending = kMaxAckPending;
  cc.DeliverPolicy = state.options.from_beginning ? js_DeliverAll : js_DeliverNew;
  return cc;
}

Result<void> NatsBroker::EnsureInbox(const Inbox& inbox, const std::string& stream,
                                     const std::string& consumer, const std::string& filter_subject,
                                     const std::string& replay_subject,
                                     const SubscriptionOptions& options, bool create) {
  const std::string key = inbox.ToString();
  auto it = inboxes_.find(key);
  std::shared_ptr<InboxState> state;
  if (it != inboxes_.end()) {
    state = it->second;
  } else {
    state = std::make_shared<InboxState>();
    state->rates = RateMeter<5>(options_.clock(), {});
    state->inbox = inbox;
    state->id = ++next_inbox_id_;
    state->stream = stream;
    state->consumer = consumer;
    state->filter_subject = filter_subject;
    state->replay_subject = replay_subject;
  }
  state->options = options;
  if (create) {
    const std::string description = Hex(EncodeSubscriptionOptions(options));
    jsConsumerConfig cc = ConsumerConfig(*state, description);
    jsConsumerInfo* existing = nullptr;
    jsErrCode code{};
    auto s = js_GetConsumerInfo(&existing, js_, stream.c_str(), consumer.c_str(), nullptr, &code);
    jsConsumerInfo* info = nullptr;
    if (s == NATS_OK) {
      // Where it starts is its own (a replay may have moved it): keep it.
      cc.DeliverPolicy = existing->Config->DeliverPolicy;
      cc.OptStartSeq = existing->Config->OptStartSeq;
      cc.OptStartTime = existing->Config->OptStartTime;
      jsConsumerInfo_Destroy(existing);
      s = js_UpdateConsumer(&info, js_, stream.c_str(), &cc, nullptr, &code);
    } else {
      s = js_AddConsumer(&info, js_, stream.c_str(), &cc, nullptr, &code);
    }
    if (info != nullptr) jsConsumerInfo_Destroy(info);
    if (s != NATS_OK) return ApiError("consumer " + key, s, code);
  }
  if (!state->pull) {
    if (auto r = Bind(*state); !r) return r;
  }
  inboxes_[key] = state;
  return Ok();
}

Result<void> NatsBroker::Bind(InboxState& state) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = state.stream.c_str();
  so.Consumer = state.consumer.c_str();
  so.ManualAck = true;
  auto pull = std::make_shared<PullSub>();
  jsErrCode code{};
  auto s = js_PullSubscribe(&pull->sub, js_, state.filter_subject.c_str(), state.consumer.c_str(),
                            nullptr, &so, &code);
  if (s != NATS_OK) {
    pull->sub = nullptr;
    return ApiError("pull subscription " + state.inbox.ToString(), s, code);
  }
  state.pull = std::move(pull);
  return Ok();
}

Result<void> NatsBroker::RestartSubscription(const std::string& topic, const std::string& name,
                                             jsDeliverPolicy policy, std::uint64_t seq,
                                             std::int64_t time) {
  auto state = Find(Inbox::Subscription(topic, name));
  if (!state) {
    return Fail(ErrorCode::kNotFound, fmt::format("unknown subscription {}/{}", topic, name));
  }
  DropReceipts(*state);
  state->pull.reset();
  state->deferrals.clear();
  jsErrCode code{};
  auto s = js_DeleteConsumer(js_, state->stream.c_str(), state->consumer.c_str(), nullptr, &code);
  if (s != NATS_OK && code != JSConsumerNotFoundErr) return ApiError("delete consumer", s, code);
  const std::string description = Hex(EncodeSubscriptionOptions(state->options));
  jsConsumerConfig cc = ConsumerConfig(*state, description);
  cc.DeliverPolicy = policy;
  cc.OptStartSeq = seq;
  cc.OptStartTime = time;
  jsConsumerInfo* info = nullptr;
  s = js_AddConsumer(&info, js_, state->stream.c_str(), &cc, nullptr, &code);
  if (info != nullptr) jsConsumerInfo_Destroy(info);
  if (s != NATS_OK) return ApiError("consumer " + state->inbox.ToString(), s, code);
  if (auto r = Bind(*state); !r) return r;
  Notify(state);
  return Ok();
}

void NatsBroker::DropReceipts(InboxState& state) {
  for (auto it = receipts_.begin(); it != receipts_.end();) {
    if (it->second.inbox.get() == &state) {
      leases_.erase({it->second.lease_expires, it->first});
      it = receipts_.erase(it);
    } else {
      ++it;
    }
  }
  state.stats.in_flight = 0;
  state.order.Clear();
  state.held.clear();
  state.released.clear();
  state.redeliver_at.clear();
  state.nacked.clear();
}

StorageStats NatsBroker::StreamStats(const std::string& stream) const {
  StorageStats out{"stream", {}};
  jsStreamInfo* info = nullptr;
  jsErrCode code{};
  if (js_GetStreamInfo(&info, js_, stream.c_str(), nullptr, &code) == NATS_OK) {
    out.counters = {{"messages", info->State.Msgs},
                    {"bytes", info->State.Bytes},
                    {"first_sequence", info->State.FirstSeq},
                    {"last_sequence", info->State.LastSeq}};
    jsStreamInfo_Destroy(info);
  }
  return out;
}

InboxStats NatsBroker::InboxStatsOf(const InboxState& state) const {
  InboxStats out = state.stats;
  const BusTime now = options_.clock();
  const auto rates = state.rates.PerSecond(now, RateCounts(state));
  out.rates = {.deliver = rates[0],
               .redeliver = rates[1],
               .ack = rates[2],
               .nack = rates[3],
               .dead_letter = rates[4]};
  out.blocked = state.held.size() - state.released.size() - state.nacked.size();
  out.delayed = static_cast<std::uint64_t>(std::count_if(
      state.waiting.begin(), state.waiting.end(), [&](const auto& w) { return w.second > now; }));
  jsConsumerInfo* info = nullptr;
  jsErrCode code{};
  if (js_GetConsumerInfo(&info, js_, state.stream.c_str(), state.consumer.c_str(), nullptr,
                         &code) == NATS_OK) {
    // NumPending counts every message after the consumer's position, filtered ones too (for
    // a subscription with a filter, an upper bound, as the embedded backlog is).
    out.ready = info->NumPending + state.released.size();
    jsConsumerInfo_Destroy(info);
  }
  // Dead letters: the dead-letter stream's messages on this inbox's subject.
  jsOptions o;
  jsOptions_Init(&o);
  const std::string subject = DeadLetterSubject(state.inbox.topic, state.inbox.name);
  o.Stream.Info.SubjectsFilter = subject.c_str();
  jsStreamInfo* si = nullptr;
  if (js_GetStreamInfo(&si, js_, std::string(kDeadLetterStream).c_str(), &o, &code) == NATS_OK) {
    if (si->State.Subjects != nullptr) {
      for (int i = 0; i < si->State.Subjects->Count; ++i) {
        if (subject == si->State.Subjects->List[i].Subject) {
          out.dead_letters = si->State.Subjects->List[i].Msgs;
        }
      }
    }
    jsStreamInfo_Destroy(si);
  }
  return out;
}

Result<std::unique_ptr<Broker>> OpenNatsBroker(NatsBrokerOptions options,
                                               std::shared_ptr<NatsShared>* shared_out) {
  // Deliberately never freed: libnats may call back with it during and after the close (see
  // nats_client.hpp); one small object per broker opened.
  auto* keep = new std::shared_ptr<NatsShared>(std::make_shared<NatsShared>());
  auto shared = *keep;
  shared->post = options.post;
  auto broker = std::make_unique<NatsBroker>(std::move(options), shared);
  if (auto r = broker->Connect(); !r) return tl::unexpected(r.error());
  if (shared_out != nullptr) *shared_out = shared;
  return std::unique_ptr<Broker>(std::move(broker));
}

}  // namespace ferry::bus::nats
