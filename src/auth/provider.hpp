// The node's JWT providers as the request path sees them: for each `auth.jwt` provider, its
// verifier, its HMAC secret (read from secret_file) and its current JWKS, which the JWKS updater
// (jwks_updater.hpp) replaces as it reads the file or fetches the URL. The `jwt` filter of every
// route and every worker shares one Provider per provider name.
// Lifetime: ProviderFor keeps one Provider per name while some snapshot holds it; a reload that
// keeps a provider's config keeps its Provider (and its loaded keys); a changed provider gets a
// new one, which starts with the old one's keys when its JWKS source is the same.
// Thread safety: keys are swapped atomically (readers on any worker, the updater writes);
// the rest is immutable after creation except the updater's own fields, which only it touches.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/jwk.hpp"
#include "auth/jwt_verifier.hpp"
#include "config/config.hpp"

namespace ferry::observability {
template <typename Series>
class Family;
class Counter;
}  // namespace ferry::observability

namespace ferry::auth {

// The least time between two fetches of a URL's JWKS that a token with an unknown kid causes.
inline constexpr std::chrono::seconds kRefetchInterval{10};

class Provider {
 public:
  Provider(config::JwtProvider config, std::string secret);

  const config::JwtProvider& config() const { return config_; }
  const JwtVerifier& verifier() const { return verifier_; }
  // A JWKS is configured (a provider with only HMAC algorithms may have none).
  bool needs_jwks() const { return !config_.jwks.empty(); }
  bool is_url() const;

  // The keys now; null until a JWKS was loaded.
  std::shared_ptr<const Jwks> keys() const { return keys_.load(std::memory_order_acquire); }
  void Publish(std::shared_ptr<const Jwks> keys) {
    keys_.store(std::move(keys), std::memory_order_release);
  }

  // A token named a kid the keys lack: asks the updater for an early re-fetch (it rate-limits).
  void WantRefetch() { refetch_wanted_.store(true, std::memory_order_relaxed); }
  bool TakeRefetchWish() { return refetch_wanted_.exchange(false, std::memory_order_relaxed); }

  // The updater's bookkeeping (its thread only).
  struct UpdaterState {
    bool started = false;
    std::string file_signature;  // mtime, size, inode of the file last read
    std::chrono::steady_clock::time_point next_attempt{};
    std::chrono::steady_clock::time_point last_attempt{};
    std::chrono::steady_clock::duration backoff{};
    std::string last_error;  // logged when it changes
  };
  UpdaterState& updater_state() { return updater_; }

 private:
  config::JwtProvider config_;
  JwtVerifier verifier_;
  std::atomic<std::shared_ptr<const Jwks>> keys_;
  std::atomic<bool> refetch_wanted_{false};
  UpdaterState updater_;
};

// The node's Provider for `config` (by name; see Lifetime above). Main thread.
std::shared_ptr<Provider> ProviderFor(const config::JwtProvider& config);
// Every Provider some snapshot still holds. Any thread.
std::vector<std::shared_ptr<Provider>> LiveProviders();

// ferry_jwt_verifications_total{provider,result}: set once by the node (null in unit tests that
// build filters without one: then nothing is counted).
void SetVerificationCounters(observability::Family<observability::Counter>* family);
observability::Family<observability::Counter>* VerificationCounters();

// The accepted algorithms of a provider's config (names already checked by the loader): its
// list, or every asymmetric one when it lists none.
std::vector<Algorithm> AcceptedAlgorithms(const config::JwtProvider& config);

}  // namespace ferry::auth
