#include "bus/engine/channel.hpp"

#include <fmt/format.h>

#include "bus/engine/message_codec.hpp"

namespace ferry::bus {

Result<std::unique_ptr<Channel>> Channel::Open(std::shared_ptr<FileSystem> fs,
                                               LogOptions log_options, StorageOptions storage,
                                               Env env) {
  log_options.max_total_bytes = storage.max_bytes;
  // The engine's own limit applies first (with a clearer message); the log's is a backstop
  // for the framing overhead.
  log_options.max_record_bytes = static_cast<std::uint32_t>(storage.max_message_bytes + 4096);
  auto log = DurableLog::Open(std::move(fs), std::move(log_options), env.post);
  if (!log) return tl::unexpected(log.error());
  std::unique_ptr<Channel> self(new Channel(std::move(*log), storage, std::move(env)));
  self->log_->SetRejectHook([raw = self.get()](std::uint64_t first, std::uint64_t last) {
    raw->dedupe_.ForgetFrom(first);
    raw->published_ -= std::min(raw->published_, last - first + 1);
  });
  if (auto r = self->dedupe_.Rebuild(self->log_->log(), self->env_.clock()); !r) {
    return tl::unexpected(r.error());
  }
  return self;
}

Channel::Channel(std::unique_ptr<DurableLog> log, StorageOptions storage, Env env)
    : log_(std::move(log)), storage_(storage), env_(std::move(env)), dedupe_(env_.dedupe_window) {}

std::string Channel::NewId() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    std::uint64_t bits = (*env_.rng)();
    for (int i = 15; i >= 0; --i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  return id;
}

void Channel::Publish(Message message, Broker::PublishCallback done) {
  auto fail = [&](Error error) {
    env_.post([done = std::move(done), error = std::move(error)] { done(tl::unexpected(error)); });
  };
  const BusTime now = env_.clock();
  const bool generated_id = message.id.empty();
  if (generated_id) message.id = NewId();
  if (auto original = generated_id ? std::nullopt : dedupe_.Find(message.id, now)) {
    ++duplicates_;
    log_->WhenAcknowledged(
        *original, [id = message.id, seq = *original, done = std::move(done)](Result<void> r) {
          if (!r) return done(tl::unexpected(r.error()));
          done(PublishResult{.id = id, .sequence = seq, .duplicate = true});
        });
    return;
  }
  message.published_at = now;
  // A rare big message keeps its buffer only until the next publish.
  if (encoded_.capacity() > kKeptEncodedCapacity) std::string().swap(encoded_);
  EncodeMessageInto(message, &encoded_);
  const std::string& payload = encoded_;
  if (payload.size() > storage_.max_message_bytes) {
    return fail(Error(ErrorCode::kResourceExhausted,
                      fmt::format("message of {} bytes is over the limit of {}", payload.size(),
                                  storage_.max_message_bytes)));
  }
  auto seq = log_->Append(payload, generated_id ? kGeneratedIdFlag : 0);
  if (!seq) return fail(seq.error());
  ++published_;
  if (!generated_id) dedupe_.Insert(message.id, *seq, now);
  log_->WhenAcknowledged(*seq, [id = std::move(message.id), seq = *seq,
                                done = std::move(done)](Result<void> r) mutable {
    if (!r) return done(tl::unexpected(r.error()));
    done(PublishResult{.id = std::move(id), .sequence = seq, .duplicate = false});
  });
}

}  // namespace ferry::bus
