// NatsBroker's dead letters: copying a message to FERRY_DLQ, then terminating it; listing
// them (direct gets) and replaying them (docs/bus.md, "Backends", Dead letters).
#include "bus/nats/nats_broker_impl.hpp"

namespace ferry::bus::nats {

Result<std::vector<DeadLetter>> NatsBroker::DeadLetters(const Inbox& inbox, std::size_t max,
                                                        std::uint64_t after) {
  auto state = Find(inbox);
  if (!state) return Fail(ErrorCode::kNotFound, "unknown queue or subscription");
  std::vector<DeadLetter> out;
  auto r = ScanDeadLetters(*state, [&](std::uint64_t, DeadLetter letter) {
    if (letter.sequence > after) out.push_back(std::move(letter));
    return out.size() < max;
  });
  if (!r) return tl::unexpected(r.error());
  return out;
}

void NatsBroker::ReplayDeadLetters(const Inbox& inbox, std::vector<std::string> ids,
                                   ReplayCallback done) {
  auto state = Find(inbox);
  if (!state) {
    return Post([done = std::move(done)] {
      done(Fail(ErrorCode::kNotFound, "unknown queue or subscription"));
    });
  }
  std::unordered_set<std::string> wanted(ids.begin(), ids.end());
  std::vector<std::pair<std::uint64_t, DeadLetter>> chosen;
  auto r = ScanDeadLetters(*state, [&](std::uint64_t dlq_seq, DeadLetter letter) {
    if (wanted.empty() || wanted.contains(letter.message.id)) {
      chosen.emplace_back(dlq_seq, std::move(letter));
    }
    return true;
  });
  if (!r) return Post([done = std::move(done), e = r.error()] { done(tl::unexpected(e)); });
  if (chosen.empty()) return Post([done = std::move(done)] { done(std::size_t{0}); });
  struct Progress {
    std::size_t left = 0;
    std::size_t replayed = 0;
    std::optional<Error> error;
    ReplayCallback done;
  };
  auto progress = std::make_shared<Progress>();
  progress->left = chosen.size();
  progress->done = std::move(done);
  for (auto& [dlq_seq, letter] : chosen) {
    PendingPublish p;
    p.subject = state->replay_subject;
    // Its own id, so a replay is not a duplicate of the original, and a repeated replay of
    // the same dead letter (a crash before its deletion below) is.
    p.msg_id = fmt::format("replay:{}:{}", kDeadLetterStream, dlq_seq);
    p.payload = EncodeMessage(letter.message);
    p.done = [this, state, progress, dlq_seq = dlq_seq](Result<PubAckResult> r) {
      if (r) {
        jsErrCode code{};
        js_DeleteMsg(js_, std::string(kDeadLetterStream).c_str(), dlq_seq, nullptr, &code);
        ++progress->replayed;
        ++state->stats.replayed;
      } else if (!progress->error) {
        progress->error = r.error();
      }
      if (--progress->left == 0) {
        if (progress->error && progress->replayed == 0) {
          return progress->done(tl::unexpected(*progress->error));
        }
        progress->done(progress->replayed);
        Notify(state);
      }
    };
    StartPublish(std::move(p));
  }
}

void NatsBroker::Bury(const std::shared_ptr<InboxState>& state, std::shared_ptr<natsMsg> msg,
                      const std::string& key, std::uint64_t seq, std::uint32_t attempts,
                      std::string reason) {
  PendingPublish p;
  p.subject = DeadLetterSubject(state->inbox.topic, state->inbox.name);
  p.msg_id = DeadLetterMsgId(state->stream, seq);
  p.payload.assign(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get()));
  p.headers = {{kReasonHeader, reason},
               {kAttemptsHeader, std::to_string(attempts)},
               {kSequenceHeader, std::to_string(seq)},
               {kDeadAtHeader, std::to_string(Micros(options_.clock()))}};
  p.done = [this, state, msg, key, seq](Result<PubAckResult> r) {
    if (!r) {
      // Not copied: leave it to JetStream's redelivery (after AckWait) to try again.
      spdlog::warn("bus: dead letter of {} sequence {} not stored: {}", state->inbox.ToString(),
                   seq, r.error().message());
      if (!key.empty()) {
        state->order.Waiting(key, seq, options_.clock() + state->options.delivery.lease);
      }
      return;
    }
    natsMsg_Term(msg.get(), nullptr);
    Forget(*state, seq);
    ++state->stats.dead_lettered;
    ++shared_->dead_letters;
    Release(state, key, seq);
  };
  StartPublish(std::move(p));
}

template <typename Visit>
Result<void> NatsBroker::ScanDeadLetters(const InboxState& state, Visit visit) {
  const std::string subject = DeadLetterSubject(state.inbox.topic, state.inbox.name);
  const std::string stream(kDeadLetterStream);
  std::uint64_t next = 1;
  while (true) {
    jsDirectGetMsgOptions o;
    jsDirectGetMsgOptions_Init(&o);
    o.Sequence = next;
    o.NextBySubject = subject.c_str();
    natsMsg* raw = nullptr;
    auto s = js_DirectGetMsg(&raw, js_, stream.c_str(), nullptr, &o);
    if (s == NATS_NOT_FOUND) return Ok();
    if (s != NATS_OK) return ApiError("dead letters", s, jsErrCode{});
    MsgPtr msg(raw);
    const auto dlq_seq = Header(msg.get(), "Nats-Sequence");
    if (!dlq_seq) return Fail(ErrorCode::kInternal, "NATS: direct get without Nats-Sequence");
    const std::uint64_t at = std::stoull(*dlq_seq);
    next = at + 1;
    auto message = DecodeMessage(
        std::string_view(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get())));
    if (!message) continue;
    DeadLetter letter;
    letter.message = std::move(*message);
    letter.reason = Header(msg.get(), kReasonHeader).value_or("");
    letter.attempts =
        static_cast<std::uint32_t>(std::stoul(Header(msg.get(), kAttemptsHeader).value_or("0")));
    letter.sequence = std::stoull(Header(msg.get(), kSequenceHeader).value_or("0"));
    letter.dead_lettered_at = BusTime(
        std::chrono::microseconds(std::stoll(Header(msg.get(), kDeadAtHeader).value_or("0"))));
    if (!visit(at, std::move(letter))) return Ok();
  }
}

}  // namespace ferry::bus::nats
