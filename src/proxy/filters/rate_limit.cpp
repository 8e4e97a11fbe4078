#include "proxy/filters/rate_limit.hpp"

#include <fmt/format.h>

#include <map>
#include <mutex>
#include <string>
#include <utility>

#include "proxy/filters/token_bucket.hpp"
#include "proxy/local_reply.hpp"

namespace ferry::proxy::filters {
namespace {

// The node's buckets by route name, so a reload that keeps a route's limit keeps its state.
// Snapshots are built on the main thread; the lock keeps it safe anyway.
std::shared_ptr<TokenBucket> BucketFor(const std::string& route, const config::RateLimit& limit) {
  struct Entry {
    config::RateLimit limit;
    std::weak_ptr<TokenBucket> bucket;
  };
  static std::mutex mutex;
  static std::map<std::string, Entry> buckets;
  std::lock_guard lock(mutex);
  std::erase_if(buckets, [](const auto& entry) { return entry.second.bucket.expired(); });
  Entry& entry = buckets[route];
  if (auto kept = entry.bucket.lock(); kept && entry.limit == limit) return kept;
  auto made = std::make_shared<TokenBucket>(limit.rps, limit.burst);
  entry = Entry{limit, made};
  return made;
}

}  // namespace

RateLimitFilter::RateLimitFilter(config::RateLimit limit, std::shared_ptr<TokenBucket> bucket)
    : limit_(std::move(limit)), bucket_(std::move(bucket)) {}

Verdict RateLimitFilter::OnRequest(FilterContext& context) const {
  const auto now = context.clock.now();
  TokenBucket::Duration wait;
  if (!limit_.per_key) {
    wait = bucket_->Take(now);
  } else if (limit_.by.kind == config::RateLimit::By::Kind::kClientAddress) {
    wait = bucket_->Take(context.client_ip, now);
  } else {
    wait = bucket_->Take(context.request.headers.Get(limit_.by.header).value_or(""), now);
  }
  if (wait == TokenBucket::Duration::zero()) return Verdict::kContinue;
  const auto seconds = std::chrono::ceil<std::chrono::seconds>(wait).count();
  MakeErrorReply(context.reply, Error(ErrorCode::kRateLimited, "the route's rate limit is reached"),
                 "rate_limited", context.request_id);
  context.reply.headers.Add("retry-after", fmt::format("{}", seconds < 1 ? 1 : seconds));
  return Verdict::kReply;
}

std::unique_ptr<const Filter> MakeRateLimit(const config::Route& route, const config::Config&) {
  if (!route.rate_limit) return nullptr;
  return std::make_unique<RateLimitFilter>(*route.rate_limit,
                                           BucketFor(route.name, *route.rate_limit));
}

}  // namespace ferry::proxy::filters
