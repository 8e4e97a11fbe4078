// The publishing side of a queue or topic: its message log, limits and de-dup index.
// Threading: bus thread only. Publish callbacks are posted, never run inside Publish.
#pragma once

#include <memory>
#include <random>

#include "bus/broker.hpp"
#include "bus/engine/dedupe_index.hpp"
#include "bus/engine/durable_log.hpp"

namespace ferry::bus {

class Channel {
 public:
  struct Env {
    ClockFn clock;
    PostFn post;
    std::shared_ptr<std::mt19937_64> rng;
    BusDuration dedupe_window;
  };

  // Opens the log and rebuilds the de-dup index from it.
  static Result<std::unique_ptr<Channel>> Open(std::shared_ptr<FileSystem> fs,
                                               LogOptions log_options, StorageOptions storage,
                                               Env env);

  void Publish(Message message, Broker::PublishCallback done);
  void set_storage(const StorageOptions& storage) { storage_ = storage; }
  const StorageOptions& storage() const { return storage_; }

  DurableLog& log() { return *log_; }
  std::uint64_t published() const { return published_; }
  std::uint64_t duplicates() const { return duplicates_; }
  std::size_t dedupe_ids() const { return dedupe_.size(); }  // ids in the de-dup index

 private:
  Channel(std::unique_ptr<DurableLog> log, StorageOptions storage, Env env);
  std::string NewId();

  std::unique_ptr<DurableLog> log_;
  StorageOptions storage_;
  Env env_;
  DedupeIndex dedupe_;
  std::uint64_t published_ = 0;
  std::uint64_t duplicates_ = 0;
  // The record being appended; kept so its capacity is reused (the log copies it). Past
  // kKeptEncodedCapacity it is freed at the next publish.
  static constexpr std::size_t kKeptEncodedCapacity = 64 * 1024;
  std::string encoded_;
};

}  // namespace ferry::bus
