// NatsBroker's publish path: asynchronous JetStream publishes with Nats-Msg-Id, their
// PubAcks, and retries of those that got none (docs/bus.md, "Backends", Publishing).
#include "bus/nats/nats_broker_impl.hpp"

namespace ferry::bus::nats {

void NatsBroker::Publish(const Destination& to, Message message, PublishCallback done) {
  auto& channels = to.kind == Destination::Kind::kQueue ? queues_ : topics_;
  auto it = channels.find(to.name);
  if (it == channels.end()) {
    return Post([done = std::move(done), name = to.name] {
      done(Fail(ErrorCode::kNotFound, "unknown queue or topic " + name));
    });
  }
  Channel& channel = it->second;
  if (message.id.empty()) message.id = NewId();
  message.published_at = options_.clock();
  std::string payload = EncodeMessage(message);
  if (payload.size() > channel.storage.max_message_bytes) {
    return Post(
        [done = std::move(done), size = payload.size(), max = channel.storage.max_message_bytes] {
          done(Fail(ErrorCode::kResourceExhausted,
                    fmt::format("message of {} bytes is over max_message_bytes ({})", size, max)));
        });
  }
  PendingPublish p;
  p.subject = channel.subject;
  p.msg_id = message.id;
  p.payload = std::move(payload);
  p.done = [this, done = std::move(done), id = message.id, kind = to.kind,
            name = to.name](Result<PubAckResult> r) {
    if (!r) return done(tl::unexpected(r.error()));
    CountPublish(kind, name, r->duplicate);
    done(PublishResult{.id = id, .sequence = r->sequence, .duplicate = r->duplicate});
    if (!r->duplicate) NotifyDestination(kind, name);
  };
  StartPublish(std::move(p));
}

std::string NatsBroker::NewId() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t bits = rng_();
    for (int i = 15; i >= 0; --i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  return id;
}

void NatsBroker::StartPublish(PendingPublish p) {
  p.give_up = options_.clock() + kPublishRetryFor;
  const std::uint64_t token = ++next_publish_;
  pending_.emplace(token, std::move(p));
  SendPublish(token);
}

void NatsBroker::SendPublish(std::uint64_t token) {
  auto it = pending_.find(token);
  if (it == pending_.end()) return;
  PendingPublish& p = it->second;
  natsMsg* msg = nullptr;
  auto s = natsMsg_Create(&msg, p.subject.c_str(), nullptr, p.payload.data(),
                          static_cast<int>(p.payload.size()));
  if (s == NATS_OK) s = natsMsgHeader_Set(msg, kMsgIdHeader, p.msg_id.c_str());
  for (const auto& [key, value] : p.headers) {
    if (s == NATS_OK) s = natsMsgHeader_Set(msg, key.c_str(), value.c_str());
  }
  if (s == NATS_OK) {
    std::lock_guard lock(shared_->mutex);
    shared_->pending.emplace(msg, token);
  }
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.MaxWait = kPublishAckWaitMs;
  po.MsgId = p.msg_id.c_str();
  if (s == NATS_OK) s = js_PublishMsgAsync(js_, &msg, &po);
  if (s != NATS_OK) {
    if (msg != nullptr) {
      {
        std::lock_guard lock(shared_->mutex);
        shared_->pending.erase(msg);
      }
      natsMsg_Destroy(msg);
    }
    PubAckResult failed;
    failed.status = s;
    RetryOrFail(token, failed);
  }
}

void NatsBroker::OnPublished(std::uint64_t token, PubAckResult r) {
  if (r.status == NATS_OK) {
    auto it = pending_.find(token);
    if (it == pending_.end()) return;
    auto done = std::move(it->second.done);
    pending_.erase(it);
    done(std::move(r));
    return;
  }
  RetryOrFail(token, r);
}

void NatsBroker::RetryOrFail(std::uint64_t token, const PubAckResult& r) {
  auto it = pending_.find(token);
  if (it == pending_.end()) return;
  // Refusals of this message by the stream: final. Anything else (no PubAck in time, no
  // stream leader, no connection) may not have reached the stream, or may have: the same
  // Nats-Msg-Id again is answered as a duplicate if it did.
  std::optional<Error> final_error;
  if (r.error_code == JSStreamMessageExceedsMaximumErr) {
    final_error = Error(ErrorCode::kResourceExhausted,
                        "NATS: " + StatusText(r.status, r.error_code, r.error_text));
  } else if (r.error_code == JSStreamStoreFailedErr &&
             r.error_text.find("maximum") != std::string::npos) {
    final_error =
        Error(ErrorCode::kFull, "NATS: " + StatusText(r.status, r.error_code, r.error_text));
  } else if (r.error_code == JSStreamNotFoundErr ||
             (r.error_code != 0 && r.status != NATS_TIMEOUT && r.status != NATS_NO_RESPONDERS)) {
    final_error =
        Error(ErrorCode::kUnavailable, "NATS: " + StatusText(r.status, r.error_code, r.error_text));
  } else if (options_.clock() >= it->second.give_up) {
    final_error =
        Error(ErrorCode::kUnavailable, "NATS: no publish acknowledgement: " +
                                           StatusText(r.status, r.error_code, r.error_text));
  }
  if (final_error) {
    auto done = std::move(it->second.done);
    pending_.erase(it);
    done(tl::unexpected(*final_error));
    return;
  }
  retries_.emplace(options_.clock() + kPublishRetryWait, token);
}

void NatsBroker::CountPublish(Destination::Kind kind, const std::string& name, bool duplicate) {
  auto& channels = kind == Destination::Kind::kQueue ? queues_ : topics_;
  auto it = channels.find(name);
  if (it == channels.end()) return;
  ++(duplicate ? it->second.duplicates : it->second.published);
}

}  // namespace ferry::bus::nats
