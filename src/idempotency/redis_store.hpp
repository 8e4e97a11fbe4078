// The Redis store: records on a Redis server that several Ferry nodes share, so a key sent to
// any of them is the same key. Each record is a hash (the encoded Record and the marker's token)
// with a Redis expiry, so Redis purges what expired. Begin, Complete and Abandon are one Lua
// script each (atomic on the server). Durability is the server's: with appendonly and
// appendfsync always, a marker is on disk before Begin returns.
// Calls block (hiredis, a round trip with a 2 s timeout); connections are pooled, one per
// calling thread at a time, and a broken one is dropped and made again on the next call.
// Thread safety: any thread.
#pragma once

#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include "idempotency/store.hpp"

struct redisContext;
struct redisReply;

namespace ferry::idempotency {

class RedisStore final : public Store {
 public:
  // Connects once to check the server answers (PING); later calls connect as they need.
  static Result<std::unique_ptr<RedisStore>> Open(const config::Address& server);
  ~RedisStore() override;

  Result<BeginResult> Begin(std::string_view key, const Record& marker,
                            std::int64_t now_ms) override;
  Result<bool> Complete(std::string_view key, const Record& done) override;
  Result<bool> Abandon(std::string_view key, std::uint64_t token) override;
  Result<std::size_t> Purge(std::int64_t now_ms) override;

 private:
  explicit RedisStore(config::Address server) : server_(std::move(server)) {}
  struct ReplyDeleter {
    void operator()(redisReply* r) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  Result<redisContext*> Take();
  void Give(redisContext* context);
  Result<Reply> Eval(std::string_view script, std::string_view key,
                     std::initializer_list<std::string_view> args);

  config::Address server_;
  std::mutex mutex_;
  std::vector<redisContext*> idle_;
};

}  // namespace ferry::idempotency
