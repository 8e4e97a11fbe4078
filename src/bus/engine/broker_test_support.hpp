// Helpers for the bus engine tests (header only; not part of the library): a fake clock, a
// post queue standing in for the bus thread, and a harness that drives an EmbeddedBroker
// synchronously.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bus/engine/embedded_broker.hpp"
#include "bus/log/fault_injection_file_system.hpp"
#include "bus/log/log_test_support.hpp"

namespace ferry::bus::testing {

using namespace std::chrono_literals;

// Tasks posted from any thread, run by the test thread in Drain/Await.
class PostQueue {
 public:
  PostFn Fn() {
    return [this](std::function<void()> task) {
      std::lock_guard lock(mu_);
      tasks_.push_back(std::move(task));
      cv_.notify_all();
    };
  }
  // Runs tasks until `done` holds or `timeout` passes; false on timeout.
  bool Await(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      RunReady();
      if (done()) return true;
      std::unique_lock lock(mu_);
      if (!cv_.wait_until(lock, deadline, [&] { return !tasks_.empty(); })) return done();
    }
  }
  // Runs what is queued now and what those tasks queue, without waiting for other threads.
  void RunReady() {
    for (;;) {
      std::deque<std::function<void()>> batch;
      {
        std::lock_guard lock(mu_);
        if (tasks_.empty()) return;
        batch.swap(tasks_);
      }
      for (auto& task : batch) task();
    }
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
};

inline Message Msg(std::string data, std::string key = "", std::string id = "") {
  Message m;
  m.data = std::move(data);
  m.key = std::move(key);
  m.id = std::move(id);
  return m;
}

inline QueueOptions FastQueue() {
  QueueOptions q;
  q.delivery.lease = 10s;
  q.delivery.max_deliveries = 3;
  q.delivery.backoff = {.initial = 1s, .max = 8s, .multiplier = 2.0};
  return q;
}

// An EmbeddedBroker on a temp dir (or the given file system), a fake clock and a PostQueue.
class Harness {
 public:
  explicit Harness(std::shared_ptr<FileSystem> fs = nullptr,
                   Durability durability = Durability::kBatch)
      : fs_(std::move(fs)), durability_(durability) {
    Open();
  }
  ~Harness() { Close(); }

  void Open() {
    EmbeddedBrokerOptions o;
    o.data_dir = data_dir();
    o.fs = fs_;
    o.durability = durability_;
    o.segment_bytes = segment_bytes;
    o.dedupe_window = dedupe_window;
    o.state_checkpoint_bytes = state_checkpoint_bytes;
    o.clock = [this] { return now; };
    o.post = posts.Fn();
    auto broker = EmbeddedBroker::Open(std::move(o));
    ASSERT_TRUE(broker.has_value()) << broker.error().message();
    broker_ = std::move(*broker);
  }
  void Close() {
    posts.RunReady();
    broker_.reset();
    posts.RunReady();
  }
  void Reopen() {
    Close();
    Open();
  }
  EmbeddedBroker& broker() { return *broker_; }
  // The broker's data_dir (on the real disk unless a file system was given).
  std::string data_dir() const { return fs_ ? "/bus" : dir_.path(); }

  Result<PublishResult> Publish(const Destination& to, Message m) {
    std::optional<Result<PublishResult>> out;
    broker_->Publish(to, std::move(m), [&](Result<PublishResult> r) { out = std::move(r); });
    if (!posts.Await([&] { return out.has_value(); })) {
      return Fail(ErrorCode::kDeadlineExceeded, "publish not answered");
    }
    return std::move(*out);
  }
  PublishResult MustPublish(const std::string& queue, Message m) {
    auto r = Publish(Destination::Queue(queue), std::move(m));
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return r.value_or(PublishResult{});
  }
  // Receive's answer (posted), running what was posted before it.
  Result<std::vector<Delivery>> TryReceive(const Inbox& from, std::size_t max = 100) {
    std::optional<Result<std::vector<Delivery>>> out;
    broker_->Receive(from, max, [&](Result<std::vector<Delivery>> r) { out = std::move(r); });
    if (!posts.Await([&] { return out.has_value(); })) {
      return Fail(ErrorCode::kDeadlineExceeded, "receive not answered");
    }
    return std::move(*out);
  }
  std::vector<Delivery> Receive(const Inbox& from, std::size_t max = 100) {
    auto r = TryReceive(from, max);
    EXPECT_TRUE(r.has_value()) << r.error().message();
    return r.value_or(std::vector<Delivery>{});
  }
  std::vector<SettleOutcome> Ack(const Inbox& inbox, std::vector<std::string> receipts) {
    return Settle([&](Broker::SettleCallback cb) {
      broker_->Ack(inbox, std::move(receipts), std::move(cb));
    });
  }
  std::vector<SettleOutcome> Nack(const Inbox& inbox, std::vector<std::string> receipts,
                                  std::optional<BusDuration> delay = std::nullopt) {
    return Settle([&](Broker::SettleCallback cb) {
      broker_->Nack(inbox, std::move(receipts), delay, std::move(cb));
    });
  }
  std::size_t Replay(const Inbox& inbox, std::vector<std::string> ids = {}) {
    std::optional<Result<std::size_t>> out;
    broker_->ReplayDeadLetters(inbox, std::move(ids),
                               [&](Result<std::size_t> r) { out = std::move(r); });
    EXPECT_TRUE(posts.Await([&] { return out.has_value(); }));
    EXPECT_TRUE(out && out->has_value());
    return out && *out ? **out : 0;
  }
  // Runs retention (on each log's sync thread) and waits for its answer.
  Result<void> EnforceRetention() {
    std::optional<Result<void>> out;
    broker_->EnforceRetention([&](Result<void> r) { out = std::move(r); });
    if (!posts.Await([&] { return out.has_value(); })) {
      return Fail(ErrorCode::kInternal, "retention did not answer in time");
    }
    return *out;
  }
  // Moves the fake clock and lets the broker act on it.
  void Advance(BusDuration d) {
    now += std::chrono::duration_cast<BusTime::duration>(d);
    broker_->Tick();
    posts.RunReady();
  }

  BusTime now = BusTime(std::chrono::seconds(1'700'000'000));
  PostQueue posts;
  std::uint64_t segment_bytes = 4096;
  BusDuration dedupe_window = 10min;
  std::uint64_t state_checkpoint_bytes = 1u << 20;

 private:
  std::vector<SettleOutcome> Settle(const std::function<void(Broker::SettleCallback)>& call) {
    std::optional<Result<std::vector<SettleOutcome>>> out;
    call([&](Result<std::vector<SettleOutcome>> r) { out = std::move(r); });
    EXPECT_TRUE(posts.Await([&] { return out.has_value(); }));
    EXPECT_TRUE(out && out->has_value()) << (out && !*out ? (*out).error().message() : "");
    return out && *out ? std::move(**out) : std::vector<SettleOutcome>{};
  }

  TempDir dir_;
  std::shared_ptr<FileSystem> fs_;
  Durability durability_;
  std::unique_ptr<EmbeddedBroker> broker_;
};

}  // namespace ferry::bus::testing
