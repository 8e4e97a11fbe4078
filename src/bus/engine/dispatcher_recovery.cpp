// Dispatcher: recovery from the state log, dead letters and their replay, cursor reset.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "bus/engine/dispatcher.hpp"
#include "bus/engine/message_codec.hpp"
#include "bus/engine/time_util.hpp"
#include "bus/log/log_reader.hpp"
#include "bus/log/record_format.hpp"

namespace ferry::bus {
namespace {

bool SameOptions(const SubscriptionOptions& a, const SubscriptionOptions& b) {
  return EncodeSubscriptionOptions(a) == EncodeSubscriptionOptions(b);
}

}  // namespace

Result<void> Dispatcher::Apply(const StateRecord& r, std::map<std::uint64_t, Recovered>& pending,
                               std::set<std::uint64_t>& revived) {
  using Type = StateRecord::Type;
  switch (r.type) {
    case Type::kConfig: {
      auto options = DecodeSubscriptionOptions(r.text);
      if (!options) return tl::unexpected(options.error());
      options_ = std::move(*options);
      return Ok();
    }
    case Type::kReset:
      pending.clear();
      revived.clear();
      settled_ahead_.Clear();
      floor_ = r.sequence;
      return Ok();
    case Type::kDeliver:
      pending[r.sequence].attempt = r.attempt;
      pending[r.sequence].in_flight = true;
      break;
    case Type::kNack: {
      Recovered& p = pending[r.sequence];
      p.attempt = r.attempt;
      ++p.nacks;
      p.in_flight = false;
      p.retry_at = FromMicros(r.time_us);
      break;
    }
    case Type::kAck:
      pending.erase(r.sequence);
      revived.erase(r.sequence);
      settled_ahead_.Insert(r.sequence);
      break;
    case Type::kDead:
      pending.erase(r.sequence);
      revived.erase(r.sequence);
      dead_.insert_or_assign(r.sequence,
                             DeadInfo{r.id, r.key, r.text, r.attempt, FromMicros(r.time_us)});
      break;
    case Type::kReplay:
      dead_.erase(r.sequence);
      pending.erase(r.sequence);
      settled_ahead_.Erase(r.sequence);
      revived.insert(r.sequence);
      break;
    case Type::kCheckpoint:
    case Type::kCheckpointPart:
      return Ok();  // CheckpointAssembler's (see Recover)
  }
  if (r.floor > floor_) {
    floor_ = r.floor;
    // Settled below the floor needs no memory; replayed dead letters keep theirs.
    settled_ahead_.EraseBelow(floor_);
    for (auto it = pending.begin(); it != pending.end() && it->first < floor_;) {
      it = revived.contains(it->first) ? std::next(it) : pending.erase(it);
    }
  }
  return Ok();
}

Result<void> Dispatcher::Recover(std::optional<SubscriptionOptions> declared, bool from_beginning) {
  std::map<std::uint64_t, Recovered> pending;
  std::set<std::uint64_t> revived;
  bool any = false;
  bool configured = false;
  CheckpointAssembler checkpoints;
  std::uint64_t total_bytes = 0;       // bytes of every record read, as stored
  std::uint64_t checkpoint_bytes = 0;  // of the checkpoint being read
  auto reader = state_->log().NewReader(0);
  for (;;) {
    auto record = reader->Next();
    if (!record) return tl::unexpected(record.error());
    if (!*record) break;
    auto decoded = DecodeStateRecord((*record)->payload);
    if (!decoded) {
      spdlog::warn("bus: state log {} sequence {}: {}; skipped", state_->log().options().dir,
                   (*record)->sequence, decoded.error().message());
      continue;
    }
    any = true;
    const std::uint64_t size = kRecordHeaderSize + (*record)->payload.size();
    total_bytes += size;
    if (decoded->type == StateRecord::Type::kCheckpoint) checkpoint_bytes = 0;
    switch (checkpoints.Feed(*decoded)) {
      case CheckpointAssembler::Fed::kConsumed:
        checkpoint_bytes += size;
        continue;
      case CheckpointAssembler::Fed::kComplete:
        checkpoint_size_ = checkpoint_bytes + size;
        if (auto r = Restore(checkpoints.Take(), pending, revived); !r) return r;
        configured = true;
        continue;
      case CheckpointAssembler::Fed::kOther:
        break;
    }
    configured |= decoded->type == StateRecord::Type::kConfig;
    if (auto r = Apply(*decoded, pending, revived); !r) return r;
  }
  if (checkpoints.reading() || checkpoints.abandoned() > 0) {
    // Written up to a crash (or a full disk) and never acknowledged: the records before it
    // still hold the state, since only a durable checkpoint lets them be deleted.
    spdlog::warn("bus: state log {}: {} unfinished checkpoint(s) ignored",
                 state_->log().options().dir,
                 checkpoints.abandoned() + (checkpoints.reading() ? 1 : 0));
  }
  // Everything but the newest checkpoint is what the next one will make obsolete.
  written_since_checkpoint_ = total_bytes - checkpoint_size_;
  if (declared) {
    if (!configured || !SameOptions(options_, *declared)) {
      options_ = std::move(*declared);
      auto w =
          Write({.type = StateRecord::Type::kConfig, .text = EncodeSubscriptionOptions(options_)});
      if (!w) return tl::unexpected(w.error());
    }
  } else if (!configured) {
    return Fail(ErrorCode::kNotFound, "bus: " + state_->log().options().dir + " has no options");
  }
  if (!any) {
    const Log& source = source_.log();
    floor_ = from_beginning ? source.first_sequence() : source.last_sequence() + 1;
    auto w = Write({.type = StateRecord::Type::kReset, .sequence = floor_});
    if (!w) return tl::unexpected(w.error());
  }
  next_read_ = floor_;
  settled_ahead_.EraseBelow(floor_);
  // At or above the floor Fill reads every message, replayed dead letters too, and takes
  // their attempts from here.
  for (auto& [seq, p] : pending) {
    if (seq >= floor_) recovered_.emplace(seq, p);
  }
  // Replayed dead letters below the floor are entries of their own; read them now.
  for (std::uint64_t seq : revived) {
    if (seq >= floor_) continue;
    auto record = source_.log().Get(seq);
    if (!record || !*record) continue;
    auto message = DecodeMessage((**record).payload);
    if (!message) continue;
    Entry entry;
    entry.id = std::move(message->id);
    entry.key = std::move(message->key);
    entry.revived = true;
    if (auto it = pending.find(seq); it != pending.end()) {
      entry.attempt = it->second.attempt;
      entry.nacks = it->second.nacks;
      entry.in_flight = it->second.in_flight;
      entry.lease_until = Now();
      if (it->second.retry_at) entry.not_before = *it->second.retry_at;
    }
    AddEntry(seq, std::move(entry));
  }
  return Ok();
}

Result<std::vector<DeadLetter>> Dispatcher::DeadLetters(std::size_t max,
                                                        std::uint64_t after) const {
  std::vector<DeadLetter> out;
  for (auto it = dead_.upper_bound(after); it != dead_.end() && out.size() < max; ++it) {
    DeadLetter letter{.sequence = it->first,
                      .reason = it->second.reason,
                      .attempts = it->second.attempts,
                      .dead_lettered_at = it->second.at};
    auto record = source_.log().Get(it->first);
    if (!record) return tl::unexpected(record.error());
    if (*record) {
      if (auto m = DecodeMessage((**record).payload)) letter.message = std::move(*m);
    } else {
      letter.message.id = it->second.id;
      letter.reason += " (message deleted by retention)";
    }
    out.push_back(std::move(letter));
  }
  return out;
}

void Dispatcher::ReplayDeadLetters(const std::vector<std::string>& ids,
                                   Broker::ReplayCallback done) {
  if (auto status = state_->log().status(); !status) {
    env_.post([done = std::move(done), error = status.error()] { done(tl::unexpected(error)); });
    return;
  }
  std::size_t count = 0;
  std::optional<Error> write_error;
  for (auto it = dead_.begin(); it != dead_.end();) {
    if (!ids.empty() && std::find(ids.begin(), ids.end(), it->second.id) == ids.end()) {
      ++it;
      continue;
    }
    const std::uint64_t seq = it->first;
    Entry entry;
    entry.id = it->second.id;
    entry.key = it->second.key;
    entry.revived = seq < floor_;
    entry.not_before = Now();
    it = dead_.erase(it);
    AddEntry(seq, std::move(entry));
    auto written = Write({.type = StateRecord::Type::kReplay, .sequence = seq});
    if (!written && !write_error) write_error = written.error();
    ++count;
  }
  stats_.replayed += count;
  if (write_error) {
    env_.post([done = std::move(done), error = *write_error] { done(tl::unexpected(error)); });
    MaybeNotify();
    return;
  }
  state_->WhenAcknowledged(state_->log().last_sequence(),
                           [count, done = std::move(done)](Result<void> r) {
                             if (!r) return done(tl::unexpected(r.error()));
                             done(count);
                           });
  MaybeCheckpoint();
  MaybeNotify();
}

Result<void> Dispatcher::UpdateOptions(const SubscriptionOptions& options) {
  if (SameOptions(options, options_)) return Ok();
  options_ = options;
  auto w = Write({.type = StateRecord::Type::kConfig, .text = EncodeSubscriptionOptions(options)});
  if (!w) return tl::unexpected(w.error());
  MaybeCheckpoint();
  return Ok();
}

Result<void> Dispatcher::Reset(std::uint64_t sequence) {
  entries_.clear();
  ready_.clear();
  timers_.clear();
  slot_counts_ = {};
  keys_.clear();
  settled_ahead_.Clear();
  recovered_.clear();
  floor_ = next_read_ = std::max<std::uint64_t>(sequence, 1);
  auto w = Write({.type = StateRecord::Type::kReset, .sequence = floor_});
  if (!w) return tl::unexpected(w.error());
  Fill();
  MaybeCheckpoint();
  MaybeNotify();
  return Ok();
}

}  // namespace ferry::bus
