// NatsBroker's receive path: pulls (on the FetchWorker), what a fetched message becomes
// (handed out, held behind its key, deferred, dead-lettered), leases, ack, nack (redelivered
// by this node), extend, per-key order, and the timers Tick runs.
#include "bus/nats/nats_broker_impl.hpp"

namespace ferry::bus::nats {

void NatsBroker::Receive(const Inbox& from, std::size_t max, ReceiveCallback done) {
  auto state = Find(from);
  if (!state) {
    return Post([done = std::move(done), name = from.ToString()] {
      done(Fail(ErrorCode::kNotFound, "unknown queue or subscription " + name));
    });
  }
  max = std::max<std::size_t>(max, 1);
  std::vector<Delivery> got;
  TakeReleased(state, max, got);
  if (got.size() >= max) {
    return Post([done = std::move(done), got = std::move(got)]() mutable { done(std::move(got)); });
  }
  Fetch(state, max, std::move(got), std::move(done));
}

void NatsBroker::Ack(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done) {
  Settle(inbox, std::move(receipts), std::move(done), [this](InFlight& f) {
    natsMsg_Ack(f.msg.get(), nullptr);
    ++f.inbox->stats.acked;
    Forget(*f.inbox, f.sequence);
    Release(f.inbox, f.key, f.sequence);
  });
}

void NatsBroker::Nack(const Inbox& inbox, std::vector<std::string> receipts,
                      std::optional<BusDuration> delay, SettleCallback done) {
  Settle(inbox, std::move(receipts), std::move(done), [this, delay](InFlight& f) {
    ++f.inbox->stats.nacked;
    const auto& d = f.inbox->options.delivery;
    if (d.max_deliveries != 0 && f.attempt >= d.max_deliveries) {
      return Bury(f.inbox, f.msg, f.key, f.sequence, f.attempt,
                  fmt::format("max deliveries ({}) exceeded: nacked {} times", d.max_deliveries,
                              f.attempt));
    }
    const BusDuration wait = delay ? *delay : Backoff(d, f.attempt);
    Redeliver(f.inbox, f.sequence, std::move(f.msg), options_.clock() + wait);
  });
}

Result<std::vector<SettleOutcome>> NatsBroker::Extend(const Inbox& inbox,
                                                      const std::vector<std::string>& receipts,
                                                      BusDuration extension) {
  // JetStream's "in progress" restarts AckWait (the lease) from now. Ferry holds the lease to
  // now + extension and, while that is further than AckWait, says "in progress" again every
  // half lease (Tick).
  std::vector<SettleOutcome> out;
  const BusTime now = options_.clock();
  for (const auto& receipt : receipts) {
    InFlight* f = nullptr;
    const SettleOutcome outcome = Lookup(inbox, receipt, now, &f);
    if (outcome == SettleOutcome::kOk) {
      natsMsg_InProgress(f->msg.get(), nullptr);
      leases_.erase({f->lease_expires, receipt});
      const BusDuration lease = f->inbox->options.delivery.lease;
      f->lease_expires = now + std::max(extension, lease);
      leases_.insert({f->lease_expires, receipt});
      if (extension > lease) keepalives_.emplace(now + lease / 2, receipt);
    }
    out.push_back(outcome);
  }
  return out;
}

std::optional<BusTime> NatsBroker::NextWakeup() const {
  std::optional<BusTime> next;
  auto consider = [&](BusTime t) {
    if (!next || t < *next) next = t;
  };
  if (!leases_.empty()) consider(leases_.begin()->first);
  if (!wakeups_.empty()) consider(wakeups_.begin()->first);
  if (!retries_.empty()) consider(retries_.begin()->first);
  if (!keepalives_.empty()) consider(keepalives_.begin()->first);
  if (!inboxes_.empty()) consider(next_poll_);
  for (const auto& [key, state] : inboxes_) {
    if (!state->held.empty()) consider(state->next_refresh);
    if (!state->redeliver_at.empty()) consider(state->redeliver_at.begin()->first);
  }
  return next;
}

void NatsBroker::Tick() {
  const BusTime now = options_.clock();
  if (now >= next_poll_) {
    // Publishes through other Ferry nodes (or straight to NATS) notify no one here: every
    // inbox's long polls try a pull this often (a spurious wake-up costs one empty fetch).
    next_poll_ = now + kForeignPublishPoll;
    for (const auto& [key, state] : inboxes_) Notify(state);
  }
  // Lost leases: JetStream redelivers after AckWait by itself; Ferry forgets the receipt (an
  // ack with it is stale) and wakes the inbox's long polls.
  while (!leases_.empty() && leases_.begin()->first <= now) {
    auto receipt = leases_.begin()->second;
    leases_.erase(leases_.begin());
    auto it = receipts_.find(receipt);
    if (it == receipts_.end()) continue;
    auto inbox = it->second.inbox;
    InFlight lost = std::move(it->second);
    ++inbox->stats.lease_expired;
    receipts_.erase(it);
    if (inbox->stats.in_flight > 0) --inbox->stats.in_flight;
    const auto max = inbox->options.delivery.max_deliveries;
    if (max != 0 && lost.attempt >= max) {
      // The last delivery failed: dead-letter it now (if JetStream redelivers it first, that
      // fetch buries it too, under the same dead-letter Nats-Msg-Id).
      Bury(inbox, lost.msg, lost.key, lost.sequence, lost.attempt,
           fmt::format("max deliveries ({}) exceeded after lease expiry", max));
      continue;
    }
    // JetStream's AckWait ran from the server's delivery, a moment before Ferry's lease: the
    // message is deliverable by now or very soon, and still its key's head.
    if (!lost.key.empty()) inbox->order.Waiting(lost.key, lost.sequence, now);
    WakeAt(now + milliseconds(50), inbox);
  }
  while (!wakeups_.empty() && wakeups_.begin()->first <= now) {
    auto inbox = wakeups_.begin()->second.lock();
    wakeups_.erase(wakeups_.begin());
    if (inbox) Notify(inbox);
  }
  while (!keepalives_.empty() && keepalives_.begin()->first <= now) {
    auto receipt = keepalives_.begin()->second;
    keepalives_.erase(keepalives_.begin());
    auto it = receipts_.find(receipt);
    if (it == receipts_.end() || it->second.lease_expires <= now) continue;
    // An extension past AckWait: tell JetStream "in progress" again before AckWait ends.
    natsMsg_InProgress(it->second.msg.get(), nullptr);
    const BusDuration half = it->second.inbox->options.delivery.lease / 2;
    if (it->second.lease_expires - now > half) keepalives_.emplace(now + half, receipt);
  }
  while (!retries_.empty() && retries_.begin()->first <= now) {
    auto token = retries_.begin()->second;
    retries_.erase(retries_.begin());
    SendPublish(token);
  }
  // Nacked deliveries whose backoff ended go out with the next Receive.
  for (const auto& [key, state] : inboxes_) {
    bool due = false;
    while (!state->redeliver_at.empty() && state->redeliver_at.begin()->first <= now) {
      const std::uint64_t seq = state->redeliver_at.begin()->second;
      state->redeliver_at.erase(state->redeliver_at.begin());
      if (state->nacked.erase(seq) != 0 && state->held.contains(seq)) {
        state->released.insert(seq);
        due = true;
      }
    }
    if (due) Notify(state);
  }
  // Held messages stay in flight to this node: each InProgress restarts their AckWait.
  for (const auto& [key, state] : inboxes_) {
    if (state->held.empty() || state->next_refresh > now) continue;
    for (const auto& [seq, msg] : state->held) natsMsg_InProgress(msg.get(), nullptr);
    state->next_refresh = now + RefreshInterval(*state);
  }
}

BusDuration NatsBroker::Backoff(const DeliveryOptions& d, std::uint32_t failures) {
  double wait = static_cast<double>(Nanos(d.backoff.initial));
  for (std::uint32_t i = 1; i < failures && wait < static_cast<double>(Nanos(d.backoff.max)); ++i) {
    wait *= d.backoff.multiplier;
  }
  return std::min<BusDuration>(d.backoff.max, BusDuration(static_cast<std::int64_t>(wait)));
}

void NatsBroker::Hold(InboxState& state, std::uint64_t seq, std::shared_ptr<natsMsg> msg,
                      BusTime now) {
  if (state.held.empty()) state.next_refresh = now + RefreshInterval(state);
  state.held[seq] = std::move(msg);  // a redelivery of a held one replaces it
}

void NatsBroker::Redeliver(const std::shared_ptr<InboxState>& state, std::uint64_t seq,
                           std::shared_ptr<natsMsg> msg, BusTime at) {
  ++state->local_redeliveries[seq];
  natsMsg_InProgress(msg.get(), nullptr);  // its AckWait runs from now; Tick keeps it alive
  Hold(*state, seq, std::move(msg), options_.clock());
  state->waiting[seq] = at;
  state->nacked.insert(seq);
  state->redeliver_at.emplace(at, seq);
}

void NatsBroker::Forget(InboxState& state, std::uint64_t seq) {
  state.deferrals.erase(seq);
  state.waiting.erase(seq);
  state.local_redeliveries.erase(seq);
}

void NatsBroker::Release(const std::shared_ptr<InboxState>& state, const std::string& key,
                         std::uint64_t seq) {
  if (key.empty()) return;
  auto next = state->order.Settled(key, seq);
  if (next) Released(state, key, *next);
}

void NatsBroker::Released(const std::shared_ptr<InboxState>& state, const std::string& key,
                          std::uint64_t seq) {
  // Every message KeyOrder holds is in `held`; were one missing, its key must not wait on it.
  while (!state->held.contains(seq)) {
    auto next = state->order.Settled(key, seq);
    if (!next) return;
    seq = *next;
  }
  state->released.insert(seq);
  Notify(state);
}

void NatsBroker::TakeReleased(const std::shared_ptr<InboxState>& state, std::size_t max,
                              std::vector<Delivery>& got) {
  const BusTime now = options_.clock();
  while (!state->released.empty() && got.size() < max) {
    const std::uint64_t seq = *state->released.begin();
    state->released.erase(state->released.begin());
    auto it = state->held.find(seq);
    if (it == state->held.end()) continue;
    auto msg = std::move(it->second);
    state->held.erase(it);
    Offer(state, std::move(msg), now, /*held=*/true, got);
  }
}

void NatsBroker::Fetch(std::shared_ptr<InboxState> state, std::size_t want,
                       std::vector<Delivery> got, ReceiveCallback done) {
  auto pull = state->pull;
  if (!pull || pull->sub == nullptr) {
    return Post([done = std::move(done)] {
      done(Fail(ErrorCode::kUnavailable, "NATS: no pull subscription"));
    });
  }
  const int batch = static_cast<int>(std::min<std::size_t>(want - got.size(), 1000));
  // On the bus thread, before the job is queued: the pull starts no earlier (see OnFetched).
  const BusTime started = options_.clock();
  worker_->Submit([this, shared = shared_, pull, batch, started, state = std::move(state),
                   got = std::move(got), want, done = std::move(done)]() mutable {
    natsMsgList list{nullptr, 0};
    jsFetchRequest req;
    jsFetchRequest_Init(&req);
    req.Batch = batch;
    req.NoWait = true;
    // NoWait still waits while the consumer has messages pending redelivery (a NAK's delay):
    // Expires bounds that, so a pull that finds nothing answers at once.
    req.Expires = Nanos(kFetchExpires);
    auto s = natsSubscription_FetchRequest(&list, pull->sub, &req);
    auto msgs = std::make_shared<std::vector<MsgPtr>>();
    for (int i = 0; i < list.Count; ++i) {
      msgs->emplace_back(list.Msgs[i]);
      list.Msgs[i] = nullptr;
    }
    natsMsgList_Destroy(&list);
    shared->post([this, shared, s, batch, started, state = std::move(state), got = std::move(got),
                  want, done = std::move(done), msgs]() mutable {
      if (!shared->alive) return;
      OnFetched(std::move(state), s, batch, started, std::move(*msgs), std::move(got), want,
                std::move(done));
    });
  });
}

void NatsBroker::OnFetched(std::shared_ptr<InboxState> state, natsStatus status, int batch,
                           BusTime started, std::vector<MsgPtr> msgs, std::vector<Delivery> got,
                           std::size_t want, ReceiveCallback done) {
  if (Find(state->inbox) != state) {  // deleted or replayed meanwhile: hand nothing out
    return done(std::move(got));
  }
  const bool empty_ok = status == NATS_OK || status == NATS_TIMEOUT || status == NATS_NOT_FOUND ||
                        status == NATS_NO_RESPONDERS;
  if (msgs.empty() && !empty_ok && got.empty()) {
    spdlog::debug("bus: fetch from {}: {}", state->inbox.ToString(), StatusText(status));
    return done(std::vector<Delivery>{});
  }
  const std::size_t fetched = msgs.size();
  bool skipped = false;
  const BusTime now = options_.clock();
  for (auto& owned : msgs) {
    std::shared_ptr<natsMsg> msg(owned.release(), MsgDeleter{});
    if (!Offer(state, std::move(msg), now, /*held=*/false, got)) skipped = true;
  }
  if (empty_ok && static_cast<int>(fetched) < batch) {
    // The pull took everything the consumer had for us: a key's head that went back to
    // JetStream and was due well before the pull started, and did not come, went to another
    // node. Its key goes on here.
    for (const auto& [key, seq] : state->order.ExpireWaiting(started - kRedeliveryGrace)) {
      Released(state, key, seq);
    }
    TakeReleased(state, want, got);
  }
  // Skipped ones made room: there may be more behind them.
  if (skipped && got.size() < want && static_cast<int>(fetched) == batch) {
    return Fetch(std::move(state), want, std::move(got), std::move(done));
  }
  done(std::move(got));
}

bool NatsBroker::Offer(const std::shared_ptr<InboxState>& state, std::shared_ptr<natsMsg> msg,
                       BusTime now, bool held, std::vector<Delivery>& got) {
  jsMsgMetaData* meta = nullptr;
  if (natsMsg_GetMetaData(&meta, msg.get()) != NATS_OK) return false;  // not a JetStream one
  const std::uint64_t seq = meta->Sequence.Stream;
  const std::uint64_t delivered = meta->NumDelivered;
  jsMsgMetaData_Destroy(meta);
  const char* subject = natsMsg_GetSubject(msg.get());
  // A replayed dead letter of another subscription of this topic.
  if (!state->inbox.is_queue() && subject != nullptr &&
      std::string_view(subject) != TopicEventSubject(state->inbox.topic) &&
      subject != state->replay_subject) {
    natsMsg_Ack(msg.get(), nullptr);
    return false;
  }
  auto message =
      DecodeMessage(std::string_view(natsMsg_GetData(msg.get()), natsMsg_GetDataLength(msg.get())));
  if (!message) {
    spdlog::warn("bus: {} sequence {} is not a Ferry message; terminated", state->inbox.ToString(),
                 seq);
    natsMsg_Term(msg.get(), nullptr);
    return false;
  }
  const auto& f = state->options.filter;
  if (!state->inbox.is_queue() &&
      !(FieldMatches(f.type, message->type) && FieldMatches(f.source, message->source) &&
        FieldMatches(f.subject, message->subject))) {
    natsMsg_Ack(msg.get(), nullptr);              // not for this subscription: settled at once
    if (held) Release(state, message->key, seq);  // the filter changed while it was held
    return false;
  }
  const std::string& key = message->key;
  if (!key.empty()) {
    if (!state->order.Admit(key, seq)) {
      Hold(*state, seq, std::move(msg), now);
      return false;
    }
    if (!held && state->held.erase(seq) != 0) {  // JetStream redelivered a held one
      state->released.erase(seq);
      state->nacked.erase(seq);
    }
  }
  if (message->deliver_at && *message->deliver_at > now) {
    const auto wait = *message->deliver_at - now;
    natsMsg_NakWithDelay(msg.get(), duration_cast<milliseconds>(wait).count() + 1, nullptr);
    ++state->deferrals[seq];
    state->waiting[seq] = *message->deliver_at;
    if (!key.empty()) state->order.Waiting(key, seq, *message->deliver_at);
    WakeAt(*message->deliver_at, state);
    return false;
  }
  std::uint32_t deferred = 0;
  if (auto d = state->deferrals.find(seq); d != state->deferrals.end()) deferred = d->second;
  std::uint32_t local = 0;
  if (auto l = state->local_redeliveries.find(seq); l != state->local_redeliveries.end()) {
    local = l->second;
  }
  const auto attempt =
      static_cast<std::uint32_t>(delivered > deferred ? delivered - deferred : 1) + local;
  state->waiting.erase(seq);
  if (!key.empty()) state->order.Out(key, seq);
  const auto& d = state->options.delivery;
  if (d.max_deliveries != 0 && attempt > d.max_deliveries) {
    // The last delivery's lease ran out: JetStream delivered it once more, to Ferry.
    Bury(state, msg, key, seq, attempt - 1,
         fmt::format("max deliveries ({}) exceeded after lease expiry", d.max_deliveries));
    return false;
  }
  // A held one's AckWait ran from its last InProgress: restart it with Ferry's lease.
  if (held) natsMsg_InProgress(msg.get(), nullptr);
  if (attempt > 1) {
    ++state->stats.redelivered;
    ++shared_->redeliveries;
  }
  ++state->stats.delivered;
  ++state->stats.in_flight;
  Delivery delivery;
  delivery.message = std::move(*message);
  delivery.sequence = seq;
  delivery.attempt = attempt;
  delivery.lease_expires = now + d.lease;
  delivery.receipt = fmt::format("{}-{}", state->id, ++next_receipt_);
  receipts_.emplace(delivery.receipt, InFlight{state, std::move(msg), delivery.message.key, seq,
                                               attempt, delivery.lease_expires});
  leases_.insert({delivery.lease_expires, delivery.receipt});
  got.push_back(std::move(delivery));
  return true;
}

SettleOutcome NatsBroker::Lookup(const Inbox& inbox, const std::string& receipt, BusTime now,
                                 InFlight** out) {
  auto state = Find(inbox);
  const auto dash = receipt.find('-');
  if (!state || dash == std::string::npos) return SettleOutcome::kInvalid;
  std::uint64_t id = 0;
  std::uint64_t counter = 0;
  try {
    std::size_t used = 0;
    id = std::stoull(receipt.substr(0, dash), &used);
    if (used != dash) return SettleOutcome::kInvalid;
    counter = std::stoull(receipt.substr(dash + 1), &used);
    if (used != receipt.size() - dash - 1) return SettleOutcome::kInvalid;
  } catch (...) {
    return SettleOutcome::kInvalid;
  }
  if (id != state->id || counter == 0 || counter > next_receipt_) return SettleOutcome::kInvalid;
  auto it = receipts_.find(receipt);
  if (it == receipts_.end()) return SettleOutcome::kStale;
  if (it->second.lease_expires <= now) return SettleOutcome::kStale;
  *out = &it->second;
  return SettleOutcome::kOk;
}

void NatsBroker::Settle(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done,
                        const std::function<void(InFlight&)>& apply) {
  if (!Find(inbox)) {
    return Post([done = std::move(done), name = inbox.ToString()] {
      done(Fail(ErrorCode::kNotFound, "unknown queue or subscription " + name));
    });
  }
  std::vector<SettleOutcome> out;
  const BusTime now = options_.clock();
  for (const auto& receipt : receipts) {
    InFlight* f = nullptr;
    const SettleOutcome outcome = Lookup(inbox, receipt, now, &f);
    if (outcome == SettleOutcome::kOk) {
      InFlight flight = std::move(*f);
      leases_.erase({flight.lease_expires, receipt});
      receipts_.erase(receipt);
      if (flight.inbox->stats.in_flight > 0) --flight.inbox->stats.in_flight;
      apply(flight);
    }
    out.push_back(outcome);
  }
  Post([done = std::move(done), out = std::move(out)] { done(out); });
}

}  // namespace ferry::bus::nats
