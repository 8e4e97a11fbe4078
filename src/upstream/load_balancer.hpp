// Load balancers: pick one endpoint of a service for a request (round robin, least request by
// power of two choices, uniform random, consistent hash).
// Thread safety: none, by design. Each worker owns one LoadBalancer per service and calls it
// from its own thread only; Pick mutates a cursor or a random generator, so sharing one across
// threads is a bug. No locks anywhere.
// Ownership: Create copies what it needs from the endpoint list. Load and health are not owned
// here: the caller keeps them and lends them to each Pick (see PickContext).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "core/result.hpp"

namespace ferry::upstream {

// A source of 64-bit random numbers, injectable so tests are deterministic.
class RandomSource {
 public:
  virtual ~RandomSource() = default;
  virtual std::uint64_t Next() = 0;  // uniformly distributed over all 64-bit values
};

// xoshiro256** seeded through splitmix64: fast, small, statistically strong, not for secrets.
// The same seed gives the same sequence on every platform.
class Xoshiro256 final : public RandomSource {
 public:
  explicit Xoshiro256(std::uint64_t seed);
  std::uint64_t Next() override;

 private:
  std::uint64_t state_[4];
};

// The hash of a request attribute (a header value, the client address) that PickContext's
// hash_key wants: 64-bit FNV-1a followed by a 64-bit finalizer so that similar inputs spread.
// Stable across processes and releases: every Ferry node maps the same key to the same
// endpoint. Not collision-resistant against an adversary; do not use it for security.
std::uint64_t HashKey(std::string_view data);

// One endpoint of a service, in the stable order the caller keeps.
struct EndpointInfo {
  std::string id;  // unique within the service, e.g. "127.0.0.1:7001"; positions the hash ring
};

// The caller's live view of one endpoint, read (never written) by Pick.
struct EndpointState {
  std::uint32_t in_flight = 0;  // requests sent and not yet finished, on this worker
  bool healthy = true;          // false: skipped (failed health check, ejected as an outlier)
};

// What one Pick sees.
struct PickContext {
  // Indexed like the endpoint list given to Create. Empty means "all healthy, none busy", which
  // is what a caller without health checks or load tracking passes. Any other size is a bug.
  std::span<const EndpointState> endpoints;
  // kHash only: HashKey() of the request attribute named by the service's hash_on.
  std::uint64_t hash_key = 0;
};

class LoadBalancer {
 public:
  // Virtual nodes per endpoint on the consistent-hash ring. More points even out the shares
  // but cost memory and lookup: with 160, an endpoint's share of keys is typically within ±8%
  // of fair (worst of 32 endpoints about ±20%), and 100 endpoints make a 16k-entry (256 KiB) ring.
  static constexpr std::size_t kVirtualNodes = 160;

  // Fails with kInvalidArgument if two endpoints share an id. An empty list is allowed: every
  // Pick then returns nullopt. Round robin starts at a random position so that workers do
  // not all send their first request to the same endpoint.
  static Result<std::unique_ptr<LoadBalancer>> Create(config::LbPolicy policy,
                                                      std::span<const EndpointInfo> endpoints,
                                                      std::unique_ptr<RandomSource> random);
  // Same, with a Xoshiro256 seeded by seed (give each worker a different seed).
  static Result<std::unique_ptr<LoadBalancer>> Create(config::LbPolicy policy,
                                                      std::span<const EndpointInfo> endpoints,
                                                      std::uint64_t seed);

  virtual ~LoadBalancer() = default;

  // The index of the chosen endpoint, or nullopt when no endpoint is healthy (the caller
  // answers kUnavailable). Unhealthy endpoints are never returned:
  //  - kRoundRobin: the next healthy endpoint after the previous pick.
  //  - kRandom: uniform over the healthy endpoints.
  //  - kLeastRequest: two distinct healthy endpoints at random, the one with fewer in-flight
  //    requests wins; a tie goes to the first drawn.
  //  - kHash: the owner of hash_key on the ring; if it is unhealthy, the next healthy owner
  //    clockwise, so only that endpoint's keys move.
  virtual std::optional<std::size_t> Pick(const PickContext& context) = 0;

  virtual config::LbPolicy policy() const = 0;
  std::size_t size() const { return size_; }  // number of endpoints given to Create

 protected:
  explicit LoadBalancer(std::size_t size) : size_(size) {}

 private:
  std::size_t size_;
};

}  // namespace ferry::upstream
