#include "bus/nats/key_order.hpp"

namespace ferry::bus::nats {

bool KeyOrder::Admit(const std::string& key, std::uint64_t seq) {
  Key& k = keys_[key];
  if (k.head == 0) {
    k.head = seq;
    return true;
  }
  if (k.head == seq) return true;  // the head, redelivered
  if (k.behind.insert(seq).second) ++held_;
  return false;
}

void KeyOrder::Out(const std::string& key, std::uint64_t seq) {
  auto it = keys_.find(key);
  if (it != keys_.end() && it->second.head == seq) StopWaiting(key, it->second);
}

void KeyOrder::Waiting(const std::string& key, std::uint64_t seq, BusTime due) {
  auto it = keys_.find(key);
  if (it == keys_.end() || it->second.head != seq) return;
  StopWaiting(key, it->second);
  it->second.due = due;
  waiting_.emplace(due, key);
}

std::optional<std::uint64_t> KeyOrder::Settled(const std::string& key, std::uint64_t seq) {
  auto it = keys_.find(key);
  if (it == keys_.end()) return std::nullopt;
  Key& k = it->second;
  if (k.head != seq) {
    if (k.behind.erase(seq) != 0) --held_;
    return std::nullopt;
  }
  StopWaiting(key, k);
  auto next = Promote(k);
  if (!next) keys_.erase(it);
  return next;
}

std::vector<std::pair<std::string, std::uint64_t>> KeyOrder::ExpireWaiting(BusTime before) {
  std::vector<std::pair<std::string, std::uint64_t>> promoted;
  while (!waiting_.empty() && waiting_.begin()->first < before) {
    const std::string key = waiting_.begin()->second;
    auto it = keys_.find(key);
    if (it == keys_.end()) {
      waiting_.erase(waiting_.begin());
      continue;
    }
    StopWaiting(key, it->second);
    if (auto next = Promote(it->second)) {
      promoted.emplace_back(key, *next);
    } else {
      keys_.erase(it);
    }
  }
  return promoted;
}

void KeyOrder::Clear() {
  keys_.clear();
  waiting_.clear();
  held_ = 0;
}

void KeyOrder::StopWaiting(const std::string& key, Key& k) {
  if (k.due) waiting_.erase({*k.due, key});
  k.due.reset();
}

std::optional<std::uint64_t> KeyOrder::Promote(Key& k) {
  k.head = 0;
  if (k.behind.empty()) return std::nullopt;
  k.head = *k.behind.begin();
  k.behind.erase(k.behind.begin());
  --held_;
  return k.head;
}

}  // namespace ferry::bus::nats
