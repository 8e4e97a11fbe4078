#include "upstream/load_balancer.hpp"

#include <algorithm>
#include <cassert>
#include <unordered_set>
#include <utility>
#include <vector>

namespace ferry::upstream {
namespace {

constexpr std::uint64_t kGolden = 0x9e3779b97f4a7c15ull;  // 2^64 / golden ratio, odd

// The splitmix64 output function: a bijection on 64 bits with full avalanche.
std::uint64_t Mix64(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::uint64_t RotateLeft(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

__extension__ typedef unsigned __int128 Uint128;

// A uniform index in [0, n), n > 0, by multiply-high instead of a division. The bias is below
// n / 2^64, far under anything a load balancer can notice.
std::size_t Below(RandomSource& random, std::size_t n) {
  return static_cast<std::size_t>((static_cast<Uint128>(random.Next()) * n) >> 64);
}

// Checks the caller's view against the endpoint count. A wrong size is a caller bug; in
// release builds it is answered as "nothing to pick" rather than read out of bounds.
bool ViewFits(const PickContext& context, std::size_t size) {
  const bool fits = context.endpoints.empty() || context.endpoints.size() == size;
  assert(fits && "PickContext::endpoints must be empty or match the endpoint list");
  return fits;
}

bool Healthy(const PickContext& context, std::size_t i) {
  return context.endpoints.empty() || context.endpoints[i].healthy;
}

std::uint32_t InFlight(const PickContext& context, std::size_t i) {
  return context.endpoints.empty() ? 0 : context.endpoints[i].in_flight;
}

// The slow paths below run only when the fast draw landed on an unhealthy endpoint.
std::size_t CountHealthy(const PickContext& context, std::size_t size) {
  if (context.endpoints.empty()) return size;
  return static_cast<std::size_t>(std::count_if(context.endpoints.begin(), context.endpoints.end(),
                                                [](const EndpointState& e) { return e.healthy; }));
}

// The index of the rank-th healthy endpoint; rank < CountHealthy().
std::size_t NthHealthy(const PickContext& context, std::size_t rank) {
  if (context.endpoints.empty()) return rank;
  for (std::size_t i = 0;; ++i) {
    if (context.endpoints[i].healthy && rank-- == 0) return i;
  }
}

class RoundRobin final : public LoadBalancer {
 public:
  RoundRobin(std::size_t size, RandomSource& random)
      : LoadBalancer(size), next_(size == 0 ? 0 : Below(random, size)) {}

  std::optional<std::size_t> Pick(const PickContext& context) override {
    if (!ViewFits(context, size())) return std::nullopt;
    for (std::size_t step = 0; step < size(); ++step) {
      const std::size_t i = next_;
      next_ = next_ + 1 == size() ? 0 : next_ + 1;
      if (Healthy(context, i)) return i;
    }
    return std::nullopt;
  }

  config::LbPolicy policy() const override { return config::LbPolicy::kRoundRobin; }

 private:
  std::size_t next_;
};

// Draws over all endpoints first and falls back to drawing over the healthy ones. Both draws
// are uniform, so the result is uniform over the healthy endpoints.
class Random final : public LoadBalancer {
 public:
  Random(std::size_t size, std::unique_ptr<RandomSource> random)
      : LoadBalancer(size), random_(std::move(random)) {}

  std::optional<std::size_t> Pick(const PickContext& context) override {
    if (size() == 0 || !ViewFits(context, size())) return std::nullopt;
    const std::size_t i = Below(*random_, size());
    if (Healthy(context, i)) return i;
    const std::size_t healthy = CountHealthy(context, size());
    if (healthy == 0) return std::nullopt;
    return NthHealthy(context, Below(*random_, healthy));
  }

  config::LbPolicy policy() const override { return config::LbPolicy::kRandom; }

 private:
  std::unique_ptr<RandomSource> random_;
};

// Power of two choices: a distinct random pair, fewer in-flight wins. The pair is uniform
// over healthy pairs by the same fast-then-fallback argument as Random.
class LeastRequest final : public LoadBalancer {
 public:
  LeastRequest(std::size_t size, std::unique_ptr<RandomSource> random)
      : LoadBalancer(size), random_(std::move(random)) {}

  std::optional<std::size_t> Pick(const PickContext& context) override {
    if (size() == 0 || !ViewFits(context, size())) return std::nullopt;
    if (size() == 1) return Healthy(context, 0) ? std::optional<std::size_t>(0) : std::nullopt;
    auto [a, b] = DistinctPair(size());
    if (!Healthy(context, a) || !Healthy(context, b)) {
      const std::size_t healthy = CountHealthy(context, size());
      if (healthy == 0) return std::nullopt;
      if (healthy == 1) return NthHealthy(context, 0);
      auto [ra, rb] = DistinctPair(healthy);
      a = NthHealthy(context, ra);
      b = NthHealthy(context, rb);
    }
    return InFlight(context, b) < InFlight(context, a) ? b : a;
  }

  config::LbPolicy policy() const override { return config::LbPolicy::kLeastRequest; }

 private:
  // Two distinct indices below n (n >= 2), the first uniform, the second uniform over the rest.
  std::pair<std::size_t, std::size_t> DistinctPair(std::size_t n) {
    const std::size_t a = Below(*random_, n);
    std::size_t b = Below(*random_, n - 1);
    if (b >= a) ++b;
    return {a, b};
  }

  std::unique_ptr<RandomSource> random_;
};

// A consistent-hash ring. Each endpoint owns kVirtualNodes points derived from its id alone,
// so an endpoint's points do not depend on which other endpoints exist: adding or removing
// one moves only the keys that land on its arcs.
class HashRing final : public LoadBalancer {
 public:
  explicit HashRing(std::span<const EndpointInfo> endpoints) : LoadBalancer(endpoints.size()) {
    ring_.reserve(endpoints.size() * kVirtualNodes);
    for (std::size_t e = 0; e < endpoints.size(); ++e) {
      const std::uint64_t base = HashKey(endpoints[e].id);
      for (std::size_t v = 0; v < kVirtualNodes; ++v) {
        ring_.push_back({Mix64(base + (v + 1) * kGolden), static_cast<std::uint32_t>(e)});
      }
    }
    // Ties (vanishingly rare) break by id, so the ring does not depend on the endpoint order.
    std::sort(ring_.begin(), ring_.end(), [&](const Node& x, const Node& y) {
      if (x.point != y.point) return x.point < y.point;
      return endpoints[x.endpoint].id < endpoints[y.endpoint].id;
    });
    if (ring_.empty()) return;
    // Bucket index over the top bits of the ring: about one bucket per node, so a lookup
    // searches one or two nodes instead of binary-searching the whole ring.
    int bits = 1;
    while ((std::size_t{1} << bits) < ring_.size() && bits < 24) ++bits;
    shift_ = 64 - bits;
    const std::size_t buckets = std::size_t{1} << bits;
    bucket_start_.resize(buckets + 1);
    std::size_t pos = 0;
    for (std::size_t b = 0; b < buckets; ++b) {
      const std::uint64_t bucket_low = static_cast<std::uint64_t>(b) << shift_;
      while (pos < ring_.size() && ring_[pos].point < bucket_low) ++pos;
      bucket_start_[b] = static_cast<std::uint32_t>(pos);
    }
    bucket_start_[buckets] = static_cast<std::uint32_t>(ring_.size());
  }

  std::optional<std::size_t> Pick(const PickContext& context) override {
    if (ring_.empty() || !ViewFits(context, size())) return std::nullopt;
    // Mixed again so that callers passing small or patterned keys still spread over the ring.
    const std::uint64_t key = Mix64(context.hash_key);
    // Every node of the key's bucket lies in [start[b], start[b+1]); if none is >= key the
    // answer is start[b+1], the first node of a later bucket (or the end: wrap around).
    const std::size_t bucket = key >> shift_;
    auto it = std::lower_bound(ring_.begin() + bucket_start_[bucket],
                               ring_.begin() + bucket_start_[bucket + 1], key,
                               [](const Node& node, std::uint64_t k) { return node.point < k; });
    std::size_t pos = it == ring_.end() ? 0 : static_cast<std::size_t>(it - ring_.begin());
    if (Healthy(context, ring_[pos].endpoint)) return ring_[pos].endpoint;
    if (CountHealthy(context, size()) == 0) return std::nullopt;
    for (;;) {  // terminates: some endpoint is healthy and every endpoint is on the ring
      pos = pos + 1 == ring_.size() ? 0 : pos + 1;
      if (Healthy(context, ring_[pos].endpoint)) return ring_[pos].endpoint;
    }
  }

  config::LbPolicy policy() const override { return config::LbPolicy::kHash; }

 private:
  struct Node {
    std::uint64_t point;     // position on the ring
    std::uint32_t endpoint;  // index into the endpoint list
  };
  std::vector<Node> ring_;                   // sorted by point
  std::vector<std::uint32_t> bucket_start_;  // first node with point >= bucket << shift_
  int shift_ = 63;                           // 64 - log2(bucket count)
};

}  // namespace

Xoshiro256::Xoshiro256(std::uint64_t seed) {
  // splitmix64 expands the seed so that even seed 0 gives a non-zero, well-mixed state.
  for (auto& word : state_) {
    seed += kGolden;
    word = Mix64(seed);
  }
}

std::uint64_t Xoshiro256::Next() {
  const std::uint64_t result = RotateLeft(state_[1] * 5, 7) * 9;
  const std::uint64_t t = state_[1] << 17;
  state_[2] ^= state_[0];
  state_[3] ^= state_[1];
  state_[1] ^= state_[2];
  state_[0] ^= state_[3];
  state_[2] ^= t;
  state_[3] = RotateLeft(state_[3], 45);
  return result;
}

std::uint64_t HashKey(std::string_view data) {
  std::uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a 64 offset basis
  for (const char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;  // FNV-1a 64 prime
  }
  // FNV-1a alone leaves the high bits weak for short inputs; the ring needs all 64.
  return Mix64(h);
}

Result<std::unique_ptr<LoadBalancer>> LoadBalancer::Create(config::LbPolicy policy,
                                                           std::span<const EndpointInfo> endpoints,
                                                           std::unique_ptr<RandomSource> random) {
  std::unordered_set<std::string_view> ids;
  for (const auto& endpoint : endpoints) {
    if (!ids.insert(endpoint.id).second) {
      return Fail(ErrorCode::kInvalidArgument, "duplicate endpoint id '" + endpoint.id + "'");
    }
  }
  if (random == nullptr) return Fail(ErrorCode::kInvalidArgument, "no random source");
  switch (policy) {
    case config::LbPolicy::kRoundRobin:
      return std::make_unique<RoundRobin>(endpoints.size(), *random);
    case config::LbPolicy::kLeastRequest:
      return std::make_unique<LeastRequest>(endpoints.size(), std::move(random));
    case config::LbPolicy::kRandom:
      return std::make_unique<Random>(endpoints.size(), std::move(random));
    case config::LbPolicy::kHash:
      return std::make_unique<HashRing>(endpoints);
  }
  return Fail(ErrorCode::kInvalidArgument, "unknown load-balancing policy");
}

Result<std::unique_ptr<LoadBalancer>> LoadBalancer::Create(config::LbPolicy policy,
                                                           std::span<const EndpointInfo> endpoints,
                                                           std::uint64_t seed) {
  return Create(policy, endpoints, std::make_unique<Xoshiro256>(seed));
}

}  // namespace ferry::upstream
