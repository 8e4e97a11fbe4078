// Delivers the messages of one source log (a queue's, or a topic's for one subscription) to
// competing consumers: leases, acks, nacks, backoff, dead letters, per-key order, delayed
// delivery, and a state log that makes all of it survive a crash (state_record.hpp).
//
// Compaction. Once the records written since the last checkpoint pass Env::checkpoint_bytes
// (or twice the last checkpoint's size, if more), the whole state is written as a checkpoint
// (state_checkpoint.hpp) at the start of a fresh segment; once that is fsynced the segments
// before it are deleted. Recovery starts from the newest complete checkpoint, so the state log
// and the time to reopen stay proportional to the live state, not to the traffic.
//
// Model. Messages are read from the source log in sequence order into a window of entries
// (at most DeliveryOptions::window). An entry is in flight (leased), or pending with a
// not-before time (delayed delivery, backoff). A pending entry is ready once its time has come
// and, if it has a key, it is the lowest entry of that key: so one message per key is out at
// a time and a key's messages go in order, while other keys move on. Everything below
// floor_ is settled (acked, dead-lettered, filtered out), except replayed dead letters, which
// are entries of their own.
//
// Threading: bus thread only (see broker.hpp). Errors: Result codes; an append to a failed
// state log fails the call.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "bus/broker.hpp"
#include "bus/engine/durable_log.hpp"
#include "bus/engine/rate_meter.hpp"
#include "bus/engine/receipt.hpp"
#include "bus/engine/sequence_ranges.hpp"
#include "bus/engine/state_checkpoint.hpp"
#include "bus/engine/state_record.hpp"

namespace ferry::bus {

class Dispatcher {
 public:
  struct Env {
    ClockFn clock;
    PostFn post;
    std::shared_ptr<std::mt19937_64> rng;
    // Bytes written to the state log after which a checkpoint is due (see above).
    std::uint64_t checkpoint_bytes = kDefaultCheckpointBytes;
  };
  static constexpr std::uint64_t kDefaultCheckpointBytes = 1u << 20;

  // Recovers from `state`. `declared` replaces the recorded options (written to the state
  // log if they differ); without it the recorded ones apply (kNotFound if none). A new inbox
  // (empty state log) starts at the source's first message if `from_beginning`, else after
  // its last one. `source` must outlive the dispatcher.
  static Result<std::unique_ptr<Dispatcher>> Open(DurableLog& source,
                                                  std::unique_ptr<DurableLog> state, Env env,
                                                  std::optional<SubscriptionOptions> declared,
                                                  bool from_beginning);
  ~Dispatcher();
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  Result<std::vector<Delivery>> Receive(std::size_t max);
  void Ack(const std::vector<std::string>& receipts, Broker::SettleCallback done);
  void Nack(const std::vector<std::string>& receipts, std::optional<BusDuration> delay,
            Broker::SettleCallback done);
  std::vector<SettleOutcome> Extend(const std::vector<std::string>& receipts,
                                    BusDuration extension);
  Result<std::vector<DeadLetter>> DeadLetters(std::size_t max, std::uint64_t after) const;
  void ReplayDeadLetters(const std::vector<std::string>& ids, Broker::ReplayCallback done);
  // Forgets all progress and restarts at `sequence` (subscription replay).
  Result<void> Reset(std::uint64_t sequence);

  // New options (recorded in the state log if they differ); a new filter applies to the
  // messages read from now on.
  Result<void> UpdateOptions(const SubscriptionOptions& options);
  // The source log acknowledged more messages.
  void OnSourceAdvanced();
  void Tick();
  std::optional<BusTime> NextWakeup() const;
  void SetReadyListener(std::function<void()> listener);
  // Runs `done` (posted) once every state record written so far is acknowledged, or with the
  // state log's failure: from then on no settle or replay callback waits on this dispatcher,
  // so it can be destroyed without leaving one unanswered (subscription delete). Destroy it
  // from a task posted by `done`, not inside it: `done` runs inside the state log's pump.
  void WhenStateAcknowledged(std::function<void(Result<void>)> done);

  // Lowest source sequence still needed: unsettled messages and dead letters.
  std::uint64_t ProtectedSequence() const;
  // Counters, gauges and rates (the rates over the last minute, see SampleRates).
  InboxStats Stats() const;
  // Samples the counters for the rates (cheap; call about once a second).
  void SampleRates();
  const SubscriptionOptions& options() const { return options_; }
  const DurableLog& state_log() const { return *state_; }

 private:
  // Where Place put an entry; the counts of each keep Stats() constant-time.
  enum class Slot : std::uint8_t { kNone, kReady, kLeased, kDelayed, kBlocked };
  struct Entry {
    std::string id;   // message id (replay by id)
    std::string key;  // partition key; empty = unordered
    bool in_flight = false;
    Slot slot = Slot::kNone;
    bool revived = false;          // a replayed dead letter below floor_
    BusTime not_before{};          // pending: deliverable from
    BusTime lease_until{};         // in flight: redelivered after
    std::optional<BusTime> timer;  // its key in timers_, if it has one
    std::uint32_t attempt = 0;     // deliveries so far
    std::uint32_t nacks = 0;
    std::uint64_t nonce = 0;  // of the current delivery
  };
  struct DeadInfo {
    std::string id;
    std::string key;
    std::string reason;
    std::uint32_t attempts = 0;
    BusTime at{};
  };
  // What recovery learned of a message not yet read into the window.
  struct Recovered {
    std::uint32_t attempt = 0;
    std::uint32_t nacks = 0;
    bool in_flight = false;
    std::optional<BusTime> retry_at;
  };
  enum class Failure { kLeaseExpired, kNacked };

  Dispatcher(DurableLog& source, std::unique_ptr<DurableLog> state, Env env);
  Result<void> Recover(std::optional<SubscriptionOptions> declared, bool from_beginning);
  Result<void> Apply(const StateRecord& record, std::map<std::uint64_t, Recovered>& pending,
                     std::set<std::uint64_t>& revived);
  // Replaces what recovery built so far with a complete checkpoint (dispatcher_checkpoint.cpp).
  Result<void> Restore(StateCheckpoint checkpoint, std::map<std::uint64_t, Recovered>& pending,
                       std::set<std::uint64_t>& revived);
  // The live state as a checkpoint: what recovery would rebuild it from.
  StateCheckpoint Snapshot() const;
  // Writes a checkpoint if enough was written since the last one; called after each operation.
  void MaybeCheckpoint();
  void WriteCheckpoint();

  BusTime Now() const { return env_.clock(); }
  void Fill();
  bool Matches(const Message& message) const;
  void AddEntry(std::uint64_t sequence, Entry entry);
  void Place(std::uint64_t sequence, Entry& entry);
  void Unplace(std::uint64_t sequence, Entry& entry);
  void Remove(std::uint64_t sequence);
  // Both return the result of writing their state record (nothing written is Ok): a nack
  // must not be reported done when its record (kNack, kDead) failed.
  Result<void> Retry(std::uint64_t sequence, Entry& entry, Failure failure,
                     std::optional<BusDuration> delay);
  Result<void> Bury(std::uint64_t sequence, Entry& entry, std::string reason);
  BusDuration Backoff(std::uint32_t failures) const;
  void AdvanceFloor();
  // Appends a state record (with the current floor); the last sequence appended is kept so
  // settle callbacks can wait for it.
  Result<std::uint64_t> Write(StateRecord record);
  enum class Check { kAck, kNack, kExtend };
  SettleOutcome Validate(const std::string& text, Check check, std::uint64_t* sequence);
  void Settle(const std::vector<std::string>& receipts, Check check,
              std::optional<BusDuration> delay, Broker::SettleCallback done);
  void MaybeNotify();
  // The counters the rates follow: delivered, redelivered, acked, nacked, dead_lettered.
  RateMeter<5>::Counts RateCounts() const;

  DurableLog& source_;
  std::unique_ptr<DurableLog> state_;
  Env env_;
  SubscriptionOptions options_;
  std::shared_ptr<Dispatcher*> alive_;  // posted tasks check it

  std::map<std::uint64_t, Entry> entries_;
  std::set<std::uint64_t> ready_;
  std::set<std::pair<BusTime, std::uint64_t>> timers_;  // not-before times and lease ends
  std::unordered_map<std::string, std::set<std::uint64_t>> keys_;  // unsettled, by key
  std::map<std::uint64_t, DeadInfo> dead_;
  SequenceRanges settled_ahead_;  // settled (acked, or per a checkpoint) at or past next_read_
  std::map<std::uint64_t, Recovered> recovered_;  // attempts of messages not yet read
  std::uint64_t floor_ = 1;
  std::uint64_t next_read_ = 1;

  // Bytes (as stored, record headers too) written to the state log since the newest
  // checkpoint; at open, all but that checkpoint's.
  std::uint64_t written_since_checkpoint_ = 0;
  std::uint64_t checkpoint_size_ = 0;       // bytes of the newest checkpoint
  bool checkpoint_awaiting_fsync_ = false;  // written; older segments not yet deleted

  std::function<void()> listener_;
  bool notify_scheduled_ = false;
  InboxStats stats_;
  RateMeter<5> rates_;
  // Entries per Slot (indexed by its value), kept by Place and Unplace.
  std::array<std::uint64_t, 5> slot_counts_{};
};

}  // namespace ferry::bus
