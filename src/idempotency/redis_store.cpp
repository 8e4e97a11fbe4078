#include "idempotency/redis_store.hpp"

#include <fmt/format.h>
#include <hiredis/hiredis.h>

#include <array>
#include <string>

namespace ferry::idempotency {
namespace {

constexpr timeval kTimeout{2, 0};
constexpr std::string_view kPrefix = "ferry:idempotency:";

// KEYS[1] the key; ARGV: the encoded marker, its token, when the record expires (Unix ms). Returns
// the stored record when there is one, else writes the marker and returns nil.
constexpr std::string_view kBeginScript = R"(
local rec = redis.call('HGET', KEYS[1], 'rec')
if rec then return rec end
redis.call('HSET', KEYS[1], 'rec', ARGV[1], 'token', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return false)";
// ARGV: the token, the encoded finished record, when it expires (Unix ms). 1 if it replaced the
// marker.
constexpr std::string_view kCompleteScript = R"(
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rec', ARGV[2], 'token', '')
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1)";
// ARGV: the token. 1 if it removed the marker.
constexpr std::string_view kAbandonScript = R"(
if redis.call('HGET', KEYS[1], 'token') ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1]))";

}  // namespace

void RedisStore::ReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

Result<std::unique_ptr<RedisStore>> RedisStore::Open(const config::Address& server) {
  std::unique_ptr<RedisStore> store(new RedisStore(server));
  auto context = store->Take();
  if (!context) return tl::unexpected(context.error());
  Reply reply(static_cast<redisReply*>(redisCommand(*context, "PING")));
  if (!reply || reply->type == REDIS_REPLY_ERROR) {
    const std::string why = reply ? reply->str : (*context)->errstr;
    redisFree(*context);
    return Fail(ErrorCode::kUnavailable,
                fmt::format("idempotency store redis {}: {}", server.ToString(), why));
  }
  store->Give(*context);
  return store;
}

RedisStore::~RedisStore() {
  for (redisContext* c : idle_) redisFree(c);
}

Result<redisContext*> RedisStore::Take() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      redisContext* c = idle_.back();
      idle_.pop_back();
      return c;
    }
  }
  redisContext* c = redisConnectWithTimeout(server_.host.c_str(), server_.port, kTimeout);
  if (c == nullptr || c->err != 0) {
    const std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return Fail(ErrorCode::kUnavailable,
                fmt::format("idempotency store redis {}: {}", server_.ToString(), why));
  }
  redisSetTimeout(c, kTimeout);
  return c;
}

void RedisStore::Give(redisContext* context) {
  std::lock_guard lock(mutex_);
  idle_.push_back(context);
}

// EVAL script 1 key args... on a pooled connection; a connection that broke is dropped, one
// that carried an error reply goes back to the pool.
Result<RedisStore::Reply> RedisStore::Eval(std::string_view script, std::string_view key,
                                           std::initializer_list<std::string_view> args) {
  auto c = Take();
  if (!c) return tl::unexpected(c.error());
  constexpr std::size_t kMaxArgs = 8;
  std::array<const char*, kMaxArgs> argv{};
  std::array<std::size_t, kMaxArgs> lens{};
  std::size_t n = 0;
  const auto add = [&](std::string_view arg) {
    argv[n] = arg.data();
    lens[n++] = arg.size();
  };
  const std::string full_key = std::string(kPrefix) + std::string(key);
  for (std::string_view fixed :
       {std::string_view("EVAL"), script, std::string_view("1"), std::string_view(full_key)}) {
    add(fixed);
  }
  for (std::string_view arg : args) add(arg);
  Reply reply(static_cast<redisReply*>(
      redisCommandArgv(*c, static_cast<int>(n), argv.data(), lens.data())));
  if (!reply) {
    Error error(ErrorCode::kUnavailable,
                fmt::format("idempotency store redis {}: {}", server_.ToString(), (*c)->errstr));
    redisFree(*c);
    return tl::unexpected(std::move(error));
  }
  Give(*c);
  if (reply->type == REDIS_REPLY_ERROR) {
    return Fail(ErrorCode::kIo, fmt::format("idempotency store redis {}: {}", server_.ToString(),
                                            std::string_view(reply->str, reply->len)));
  }
  return reply;
}

Result<BeginResult> RedisStore::Begin(std::string_view key, const Record& marker,
                                      std::int64_t now_ms) {
  const std::string bytes = Encode(marker);
  const std::string token = std::to_string(marker.token);
  const std::string expires = std::to_string(marker.expires_at_ms);
  auto reply = Eval(kBeginScript, key, {bytes, token, expires});
  if (!reply) return tl::unexpected(reply.error());
  if ((*reply)->type == REDIS_REPLY_NIL) return BeginResult{};  // kStarted
  if ((*reply)->type != REDIS_REPLY_STRING) {
    return Fail(ErrorCode::kIo, "idempotency store redis: unexpected reply to begin");
  }
  const std::optional<Record> existing = Decode(std::string_view((*reply)->str, (*reply)->len));
  if (!existing) {
    return Fail(ErrorCode::kIo,
                fmt::format("idempotency store redis {}: a record is damaged", server_.ToString()));
  }
  BeginResult result = Decide(existing, marker.fingerprint, now_ms);
  // Redis expires records itself; one our clock calls expired is still a repeat of the first.
  if (result.outcome == Outcome::kStarted) result = Decide(existing, marker.fingerprint, 0);
  return result;
}

Result<bool> RedisStore::Complete(std::string_view key, const Record& done) {
  const std::string bytes = Encode(done);
  const std::string token = std::to_string(done.token);
  const std::string expires = std::to_string(done.expires_at_ms);
  auto reply = Eval(kCompleteScript, key, {token, bytes, expires});
  if (!reply) return tl::unexpected(reply.error());
  return (*reply)->type == REDIS_REPLY_INTEGER && (*reply)->integer == 1;
}

Result<bool> RedisStore::Abandon(std::string_view key, std::uint64_t token) {
  const std::string t = std::to_string(token);
  auto reply = Eval(kAbandonScript, key, {t});
  if (!reply) return tl::unexpected(reply.error());
  return (*reply)->type == REDIS_REPLY_INTEGER && (*reply)->integer == 1;
}

Result<std::size_t> RedisStore::Purge(std::int64_t) { return std::size_t{0}; }

}  // namespace ferry::idempotency
