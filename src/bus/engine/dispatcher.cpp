#include "bus/engine/dispatcher.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "bus/engine/message_codec.hpp"
#include "bus/engine/time_util.hpp"
#include "bus/log/record_format.hpp"

namespace ferry::bus {
namespace {

constexpr std::size_t kReadBatch = 256;

bool FieldMatches(const std::string& pattern, const std::string& value) {
  if (pattern.empty()) return true;
  if (pattern.back() == '*') {
    return value.compare(0, pattern.size() - 1, pattern, 0, pattern.size() - 1) == 0 &&
           value.size() >= pattern.size() - 1;
  }
  return pattern == value;
}

}  // namespace

Dispatcher::Dispatcher(DurableLog& source, std::unique_ptr<DurableLog> state, Env env)
    : source_(source),
      state_(std::move(state)),
      env_(std::move(env)),
      alive_(std::make_shared<Dispatcher*>(this)),
      rates_(env_.clock(), {}) {}

Dispatcher::~Dispatcher() { *alive_ = nullptr; }

Result<std::unique_ptr<Dispatcher>> Dispatcher::Open(DurableLog& source,
                                                     std::unique_ptr<DurableLog> state, Env env,
                                                     std::optional<SubscriptionOptions> declared,
                                                     bool from_beginning) {
  std::unique_ptr<Dispatcher> self(new Dispatcher(source, std::move(state), std::move(env)));
  if (auto r = self->Recover(std::move(declared), from_beginning); !r) {
    return tl::unexpected(r.error());
  }
  self->Fill();
  self->MaybeCheckpoint();
  return self;
}

bool Dispatcher::Matches(const Message& m) const {
  const SubscriptionFilter& f = options_.filter;
  return FieldMatches(f.type, m.type) && FieldMatches(f.source, m.source) &&
         FieldMatches(f.subject, m.subject);
}

void Dispatcher::Fill() {
  const std::uint64_t window = std::max<std::uint32_t>(options_.delivery.window, 1);
  while (entries_.size() < window && next_read_ <= source_.log().acknowledged_sequence()) {
    // A run known to be settled (acks past a stuck floor, a checkpoint's filtered-out events)
    // is stepped over without reading it.
    if (auto last = settled_ahead_.RunFrom(next_read_)) {
      next_read_ = *last + 1;
      settled_ahead_.EraseBelow(next_read_);
      continue;
    }
    auto records =
        source_.log().Read(next_read_, std::min<std::size_t>(kReadBatch, window - entries_.size()));
    if (!records) {
      spdlog::warn("bus: reading {}: {}", source_.log().options().dir, records.error().message());
      break;
    }
    if (records->empty()) break;
    for (LogRecord& record : *records) {
      const std::uint64_t seq = record.sequence;
      next_read_ = seq + 1;
      if (settled_ahead_.Erase(seq) || dead_.contains(seq)) continue;
      auto message = DecodeMessage(record.payload);
      if (!message) {
        spdlog::warn("bus: {} sequence {}: {}; skipped", source_.log().options().dir, seq,
                     message.error().message());
        continue;
      }
      if (!Matches(*message)) continue;
      Entry entry;
      entry.id = std::move(message->id);
      entry.key = std::move(message->key);
      if (message->deliver_at) entry.not_before = *message->deliver_at;
      if (auto it = recovered_.find(seq); it != recovered_.end()) {
        entry.attempt = it->second.attempt;
        entry.nacks = it->second.nacks;
        // Leased when the process stopped: that delivery failed; expire it on the next tick.
        entry.in_flight = it->second.in_flight;
        entry.lease_until = Now();
        if (it->second.retry_at)
          entry.not_before = std::max(entry.not_before, *it->second.retry_at);
        recovered_.erase(it);
      }
      AddEntry(seq, std::move(entry));
    }
  }
  AdvanceFloor();
}

void Dispatcher::AddEntry(std::uint64_t sequence, Entry entry) {
  if (auto old = entries_.find(sequence); old != entries_.end()) Unplace(sequence, old->second);
  auto it = entries_.insert_or_assign(sequence, std::move(entry)).first;
  if (!it->second.key.empty()) {
    auto& seqs = keys_[it->second.key];
    const bool was_head = !seqs.empty() && *seqs.begin() > sequence;
    seqs.insert(sequence);
    // A replayed dead letter can go ahead of the key's current head, which then waits.
    if (was_head) {
      const std::uint64_t old_head = *std::next(seqs.begin());
      Entry& head = entries_.at(old_head);
      if (!head.in_flight) Place(old_head, head);
    }
  }
  Place(sequence, it->second);
}

void Dispatcher::Unplace(std::uint64_t sequence, Entry& entry) {
  ready_.erase(sequence);
  if (entry.timer) {
    timers_.erase({*entry.timer, sequence});
    entry.timer.reset();
  }
  if (entry.slot != Slot::kNone) --slot_counts_[static_cast<std::size_t>(entry.slot)];
  entry.slot = Slot::kNone;
}

void Dispatcher::Place(std::uint64_t sequence, Entry& entry) {
  Unplace(sequence, entry);
  if (entry.in_flight) {
    entry.slot = Slot::kLeased;
    entry.timer = entry.lease_until;
  } else if (!entry.key.empty() && *keys_.at(entry.key).begin() != sequence) {
    entry.slot = Slot::kBlocked;  // behind an earlier message of its key
  } else if (entry.not_before <= Now()) {
    entry.slot = Slot::kReady;
    ready_.insert(sequence);
  } else {
    entry.slot = Slot::kDelayed;
    entry.timer = entry.not_before;
  }
  ++slot_counts_[static_cast<std::size_t>(entry.slot)];
  if (entry.timer) timers_.insert({*entry.timer, sequence});
}

void Dispatcher::Remove(std::uint64_t sequence) {
  auto it = entries_.find(sequence);
  if (it == entries_.end()) return;
  Unplace(sequence, it->second);
  const std::string key = std::move(it->second.key);
  entries_.erase(it);
  if (!key.empty()) {
    auto& seqs = keys_.at(key);
    seqs.erase(sequence);
    if (seqs.empty()) {
      keys_.erase(key);
    } else {
      Place(*seqs.begin(), entries_.at(*seqs.begin()));
    }
  }
  AdvanceFloor();
}

void Dispatcher::AdvanceFloor() {
  std::uint64_t lowest = next_read_;
  for (const auto& [seq, entry] : entries_) {
    if (!entry.revived) {
      lowest = std::min(lowest, seq);
      break;
    }
  }
  floor_ = std::max(floor_, lowest);
}

BusDuration Dispatcher::Backoff(std::uint32_t failures) const {
  const BackoffOptions& b = options_.delivery.backoff;
  double delay = static_cast<double>(b.initial.count());
  for (std::uint32_t i = 1; i < failures && delay < static_cast<double>(b.max.count()); ++i) {
    delay *= b.multiplier;
  }
  return std::min(BusDuration(static_cast<BusDuration::rep>(delay)), b.max);
}

Result<std::uint64_t> Dispatcher::Write(StateRecord record) {
  record.floor = floor_;
  const std::string payload = EncodeStateRecord(record);
  auto seq = state_->Append(payload);
  if (!seq) {
    spdlog::error("bus: state log {}: {}", state_->log().options().dir, seq.error().message());
  } else {
    written_since_checkpoint_ += kRecordHeaderSize + payload.size();
  }
  return seq;
}

Result<void> Dispatcher::Retry(std::uint64_t sequence, Entry& entry, Failure failure,
                               std::optional<BusDuration> delay) {
  const std::uint32_t max = options_.delivery.max_deliveries;
  if (max != 0 && entry.attempt >= max) {
    return Bury(
        sequence, entry,
        failure == Failure::kLeaseExpired
            ? fmt::format("max deliveries ({}) exceeded after lease expiry", max)
            : fmt::format("max deliveries ({}) exceeded: nacked {} times", max, entry.nacks));
  }
  entry.in_flight = false;
  entry.not_before = Now() + (delay ? *delay : Backoff(entry.attempt));
  Place(sequence, entry);
  if (failure == Failure::kNacked) {
    auto written = Write({.type = StateRecord::Type::kNack,
                          .sequence = sequence,
                          .attempt = entry.attempt,
                          .time_us = ToMicros(entry.not_before)});
    if (!written) return tl::unexpected(written.error());
  }
  return Ok();
}

Result<void> Dispatcher::Bury(std::uint64_t sequence, Entry& entry, std::string reason) {
  DeadInfo info{entry.id, entry.key, std::move(reason), entry.attempt, Now()};
  StateRecord record{.type = StateRecord::Type::kDead,
                     .sequence = sequence,
                     .attempt = info.attempts,
                     .time_us = ToMicros(info.at),
                     .text = info.reason,
                     .id = info.id,
                     .key = info.key};
  dead_.insert_or_assign(sequence, std::move(info));
  ++stats_.dead_lettered;
  Remove(sequence);
  auto written = Write(std::move(record));
  if (!written) return tl::unexpected(written.error());
  return Ok();
}

void Dispatcher::Tick() {
  const BusTime now = Now();
  while (!timers_.empty() && timers_.begin()->first <= now) {
    const std::uint64_t seq = timers_.begin()->second;
    Entry& entry = entries_.at(seq);
    Unplace(seq, entry);
    if (entry.in_flight) {
      ++stats_.lease_expired;
      // A failed write here has nobody to tell; the state log reports it from now on.
      (void)Retry(seq, entry, Failure::kLeaseExpired, std::nullopt);
    } else {
      Place(seq, entry);
    }
  }
  Fill();
  MaybeCheckpoint();
  MaybeNotify();
}

void Dispatcher::OnSourceAdvanced() {
  Fill();
  MaybeNotify();
}

std::optional<BusTime> Dispatcher::NextWakeup() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->first;
}

Result<std::vector<Delivery>> Dispatcher::Receive(std::size_t max) {
  if (auto status = state_->log().status(); !status) return tl::unexpected(status.error());
  Tick();
  std::vector<Delivery> out;
  const BusTime now = Now();
  while (out.size() < max && !ready_.empty()) {
    const std::uint64_t seq = *ready_.begin();
    Entry& entry = entries_.at(seq);
    auto record = source_.log().Get(seq);
    std::optional<Message> message;
    if (record && *record) {
      if (auto m = DecodeMessage((**record).payload)) message = std::move(*m);
    }
    if (!message) {  // deleted by retention (max_age) or damaged since it was read
      spdlog::warn("bus: {} sequence {} is gone; dropped", source_.log().options().dir, seq);
      Remove(seq);
      continue;
    }
    entry.in_flight = true;
    ++entry.attempt;
    entry.nonce = (*env_.rng)();
    entry.lease_until = now + options_.delivery.lease;
    Place(seq, entry);
    ++stats_.delivered;
    if (entry.attempt > 1) ++stats_.redelivered;
    (void)Write({.type = StateRecord::Type::kDeliver, .sequence = seq, .attempt = entry.attempt});
    out.push_back({.message = std::move(*message),
                   .sequence = seq,
                   .receipt = FormatReceipt({seq, entry.attempt, entry.nonce}),
                   .attempt = entry.attempt,
                   .lease_expires = entry.lease_until});
  }
  // The consumer is about to see these deliveries: their records reach the page cache first,
  // so a kill -9 from here on still counts the attempts (the pump would write them a moment
  // later, after the answer). A full disk drops them, as any record, and changes no answer.
  if (!out.empty()) (void)state_->Flush();
  MaybeCheckpoint();
  return out;
}

SettleOutcome Dispatcher::Validate(const std::string& text, Check check, std::uint64_t* sequence) {
  const auto receipt = ParseReceipt(text);
  if (!receipt) return SettleOutcome::kInvalid;
  *sequence = receipt->sequence;
  auto it = entries_.find(receipt->sequence);
  if (it == entries_.end()) {
    // Settled already, or never delivered.
    return receipt->sequence < next_read_ ? SettleOutcome::kStale : SettleOutcome::kInvalid;
  }
  const Entry& entry = it->second;
  if (receipt->attempt > entry.attempt) return SettleOutcome::kInvalid;
  if (receipt->attempt != entry.attempt || receipt->nonce != entry.nonce) {
    return SettleOutcome::kStale;
  }
  // The lease ran out but the message was not redelivered yet: an ack or nack still counts.
  if (check == Check::kExtend && !entry.in_flight) return SettleOutcome::kStale;
  return SettleOutcome::kOk;
}

void Dispatcher::Settle(const std::vector<std::string>& receipts, Check check,
                        std::optional<BusDuration> delay, Broker::SettleCallback done) {
  if (auto status = state_->log().status(); !status) {
    env_.post([done = std::move(done), error = status.error()] { done(tl::unexpected(error)); });
    return;
  }
  std::vector<SettleOutcome> outcomes;
  outcomes.reserve(receipts.size());
  std::optional<Error> write_error;
  const auto note = [&](const auto& written) {
    if (!written && !write_error) write_error = written.error();
  };
  for (const std::string& text : receipts) {
    std::uint64_t seq = 0;
    const SettleOutcome outcome = Validate(text, check, &seq);
    outcomes.push_back(outcome);
    if (outcome != SettleOutcome::kOk) continue;
    Entry& entry = entries_.at(seq);
    if (check == Check::kAck) {
      ++stats_.acked;
      Remove(seq);
      note(Write({.type = StateRecord::Type::kAck, .sequence = seq}));
    } else {
      ++stats_.nacked;
      ++entry.nacks;
      Unplace(seq, entry);
      note(Retry(seq, entry, Failure::kNacked, delay));
    }
  }
  if (write_error) {
    // Not recorded: the message may come back after a restart, so the caller must not count
    // on the ack (nor on the nack, or the dead-lettering it caused).
    env_.post([done = std::move(done), error = *write_error] { done(tl::unexpected(error)); });
    MaybeNotify();
    return;
  }
  // Waiting for the last record written waits for all of them (and for nothing if none).
  state_->WhenAcknowledged(
      state_->log().last_sequence(),
      [outcomes = std::move(outcomes), done = std::move(done)](Result<void> r) mutable {
        if (!r) return done(tl::unexpected(r.error()));
        done(std::move(outcomes));
      });
  MaybeCheckpoint();
  MaybeNotify();
}

void Dispatcher::Ack(const std::vector<std::string>& receipts, Broker::SettleCallback done) {
  Settle(receipts, Check::kAck, std::nullopt, std::move(done));
}

void Dispatcher::Nack(const std::vector<std::string>& receipts, std::optional<BusDuration> delay,
                      Broker::SettleCallback done) {
  Settle(receipts, Check::kNack, delay, std::move(done));
}

std::vector<SettleOutcome> Dispatcher::Extend(const std::vector<std::string>& receipts,
                                              BusDuration extension) {
  std::vector<SettleOutcome> outcomes;
  for (const std::string& text : receipts) {
    std::uint64_t seq = 0;
    outcomes.push_back(Validate(text, Check::kExtend, &seq));
    if (outcomes.back() != SettleOutcome::kOk) continue;
    Entry& entry = entries_.at(seq);
    entry.lease_until = Now() + extension;
    Place(seq, entry);
  }
  return outcomes;
}

void Dispatcher::SetReadyListener(std::function<void()> listener) {
  listener_ = std::move(listener);
  MaybeNotify();
}

void Dispatcher::WhenStateAcknowledged(std::function<void(Result<void>)> done) {
  state_->WhenAcknowledged(state_->log().last_sequence(), std::move(done));
}

void Dispatcher::MaybeNotify() {
  if (!listener_ || notify_scheduled_ || ready_.empty()) return;
  notify_scheduled_ = true;
  env_.post([alive = alive_] {
    Dispatcher* self = *alive;
    if (self == nullptr) return;
    self->notify_scheduled_ = false;
    if (self->listener_ && !self->ready_.empty()) self->listener_();
  });
}

std::uint64_t Dispatcher::ProtectedSequence() const {
  std::uint64_t lowest = floor_;
  if (!entries_.empty()) lowest = std::min(lowest, entries_.begin()->first);
  if (!dead_.empty()) lowest = std::min(lowest, dead_.begin()->first);
  return lowest;
}

InboxStats Dispatcher::Stats() const {
  InboxStats s = stats_;
  const BusTime now = Now();
  const auto count = [this](Slot slot) { return slot_counts_[static_cast<std::size_t>(slot)]; };
  s.ready = ready_.size();
  s.in_flight = count(Slot::kLeased);
  s.delayed = count(Slot::kDelayed);  // includes a delay that is due but not yet ticked
  s.blocked = count(Slot::kBlocked);
  const std::uint64_t acked = source_.log().acknowledged_sequence();
  s.backlog = acked >= next_read_ ? acked - next_read_ + 1 : 0;
  s.dead_letters = dead_.size();
  const auto rates = rates_.PerSecond(now, RateCounts());
  s.rates = {.deliver = rates[0],
             .redeliver = rates[1],
             .ack = rates[2],
             .nack = rates[3],
             .dead_letter = rates[4]};
  return s;
}

RateMeter<5>::Counts Dispatcher::RateCounts() const {
  return {stats_.delivered, stats_.redelivered, stats_.acked, stats_.nacked, stats_.dead_lettered};
}

void Dispatcher::SampleRates() { rates_.Sample(Now(), RateCounts()); }

}  // namespace ferry::bus
