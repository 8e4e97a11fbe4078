// Per-key order for one inbox (a queue or a subscription) on NATS JetStream: which fetched
// message of a `partitionkey` may go out, and which waits behind it (docs/bus.md "Ordering" and
// "Backends"). JetStream hands a pull consumer's messages out in parallel; the broker holds a
// fetched message whose key already has one out, keeping its JetStream lease alive, and hands
// it out when the key's head is settled. This is the bookkeeping of that, by stream sequence
// only: the broker keeps the messages themselves.
//
// A key's head is its one message out: in flight here, or gone back to JetStream (a nack, a
// deferral to `deliver_at`, a lease that ran out) to be redelivered, which keeps it the head so
// the messages behind it wait for its redelivery. A head that went back and did not come back
// to this node (another Ferry node pulled it) is given up by ExpireWaiting.
//
// Threading: none; the owner's (the bus thread).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bus/message.hpp"

namespace ferry::bus::nats {

class KeyOrder {
 public:
  // A fetched message of `key` (not empty) at stream sequence `seq`. True: it is the key's head
  // (it was, or the key had none and it becomes it): it may go out. False: held behind the head.
  bool Admit(const std::string& key, std::uint64_t seq);

  // The head `seq` of `key` is out here now (handed out, or being dead-lettered).
  void Out(const std::string& key, std::uint64_t seq);

  // The head `seq` of `key` went back to JetStream and should be redelivered by `due`.
  void Waiting(const std::string& key, std::uint64_t seq, BusTime due);

  // `seq` of `key` is settled for good (acked, dead-lettered) or dropped. If it was the head,
  // the key's next held message (lowest sequence) becomes the head and is returned.
  std::optional<std::uint64_t> Settled(const std::string& key, std::uint64_t seq);

  // Gives up the heads that went back to JetStream due before `before` (the caller saw a fetch
  // that started after that and drained the consumer come back without them: another node has
  // them). Returns the held messages that became heads in their place: (key, sequence).
  std::vector<std::pair<std::string, std::uint64_t>> ExpireWaiting(BusTime before);

  // Messages held behind a head.
  std::size_t held() const { return held_; }
  bool empty() const { return keys_.empty(); }
  void Clear();

 private:
  struct Key {
    std::uint64_t head = 0;
    std::optional<BusTime> due;  // set while the head is back with JetStream
    std::set<std::uint64_t> behind;
  };

  void StopWaiting(const std::string& key, Key& k);
  std::optional<std::uint64_t> Promote(Key& k);

  std::unordered_map<std::string, Key> keys_;
  std::set<std::pair<BusTime, std::string>> waiting_;  // (due, key) of heads back with JetStream
  std::size_t held_ = 0;
};

}  // namespace ferry::bus::nats
