// The embedded broker: the Broker interface on the bus log (bus/log). On disk, under
// data_dir: queues/<q>/messages (the queue's message log) and queues/<q>/state (its state
// log: deliveries, acks, nacks, dead letters, replays), topics/<t>/messages and
// topics/<t>/subscriptions/<s>/state (a deleted subscription's directory is first renamed to
// <s>~deleted-<n>, then removed). Consumer positions, attempts, acks and dead letters are
// rebuilt from the state logs on open, the de-dup index from the message logs (within the
// window), so all of them survive kill -9.
//
// Threading: as Broker (one bus thread; completions via EmbeddedBrokerOptions::post). The logs'
// sync threads only ever call `post`. Destroy the broker on the bus thread; tasks it posted that
// run after that do nothing.
// Ownership: owns its logs; `fs` is shared.
#pragma once

#include <map>
#include <memory>
#include <random>
#include <string>

#include "bus/broker.hpp"
#include "bus/engine/embedded_options.hpp"

namespace ferry::bus {

class Channel;
class Dispatcher;

class EmbeddedBroker final : public Broker {
 public:
  // Creates data_dir if missing. Queues and topics open when declared (CreateQueue/Topic).
  static Result<std::unique_ptr<EmbeddedBroker>> Open(EmbeddedBrokerOptions options);
  ~EmbeddedBroker() override;

  Result<void> CreateQueue(const std::string& name, const QueueOptions& options) override;
  Result<void> CreateTopic(const std::string& name, const TopicOptions& options) override;
  void WhenSubscriptionStored(const std::string& topic, const std::string& name,
                              DoneCallback done) override;
  Result<void> CreateSubscription(const std::string& topic, const std::string& name,
                                  const SubscriptionOptions& options) override;
  void DeleteSubscription(const std::string& topic, const std::string& name,
                          DoneCallback done) override;
  std::vector<std::string> Queues() const override;
  std::vector<std::string> Topics() const override;
  Result<std::vector<std::string>> Subscriptions(const std::string& topic) const override;

  void Publish(const Destination& to, Message message, PublishCallback done) override;
  void Receive(const Inbox& from, std::size_t max, ReceiveCallback done) override;
  void Ack(const Inbox& inbox, std::vector<std::string> receipts, SettleCallback done) override;
  void Nack(const Inbox& inbox, std::vector<std::string> receipts, std::optional<BusDuration> delay,
            SettleCallback done) override;
  Result<std::vector<SettleOutcome>> Extend(const Inbox& inbox,
                                            const std::vector<std::string>& receipts,
                                            BusDuration extension) override;
  Result<std::vector<DeadLetter>> DeadLetters(const Inbox& inbox, std::size_t max,
                                              std::uint64_t after) override;
  void ReplayDeadLetters(const Inbox& inbox, std::vector<std::string> ids,
                         ReplayCallback done) override;
  Result<void> ReplaySubscription(const std::string& topic, const std::string& name,
                                  std::uint64_t sequence) override;
  Result<void> ReplaySubscriptionFrom(const std::string& topic, const std::string& name,
                                      BusTime time) override;
  Result<void> SetReadyListener(const Inbox& inbox, std::function<void()> listener) override;
  Result<TopicRead> ReadTopic(const std::string& topic, std::uint64_t after, std::size_t max_events,
                              std::size_t max_bytes) override;
  Result<void> SetTopicListener(const std::string& topic, std::function<void()> listener) override;
  std::optional<BusTime> NextWakeup() const override;
  void Tick() override;
  void EnforceRetention(DoneCallback done) override;
  void SampleRates() override;
  Result<QueueStats> GetQueueStats(const std::string& queue) const override;
  Result<TopicStats> GetTopicStats(const std::string& topic) const override;
  Result<SubscriptionStats> GetSubscriptionStats(const std::string& topic,
                                                 const std::string& name) const override;
  Result<SubscriptionOptions> GetSubscriptionOptions(const std::string& topic,
                                                     const std::string& name) const override;

  // The counters of one log, by its path below data_dir: queues/<q>/messages, queues/<q>/state,
  // topics/<t>/messages, topics/<t>/subscriptions/<s>. kNotFound for any other.
  Result<LogDurabilityStats> GetLogStats(const std::string& log) const;

 private:
  struct Queue;
  struct Topic;

  explicit EmbeddedBroker(EmbeddedBrokerOptions options);
  Result<Dispatcher*> FindInbox(const Inbox& inbox) const;
  // Opens a subscription's state log and dispatcher; `options` null: as recorded. Null (and
  // Ok) when the state log holds no record at all: a creation a crash cut short.
  Result<std::unique_ptr<Dispatcher>> OpenSubscription(Topic& topic, const std::string& name,
                                                       const SubscriptionOptions* options);
  // The second half of DeleteSubscription, once the dispatcher has nothing in flight.
  void FinishDelete(const std::string& topic, const std::string& name, DoneCallback done);
  // Calls `fn` with every open log's path (as GetLogStats takes it) and counters.
  void ForEachLog(
      const std::function<void(const std::string&, const LogDurabilityStats&)>& fn) const;

  EmbeddedBrokerOptions options_;
  std::shared_ptr<std::mt19937_64> rng_;
  std::map<std::string, std::unique_ptr<Queue>> queues_;
  std::map<std::string, std::unique_ptr<Topic>> topics_;
  std::shared_ptr<EmbeddedBroker*> alive_;  // posted tasks check it
};

}  // namespace ferry::bus
