// Keeps every live provider's JWKS current, off the request path, on a thread of its own: a
// file is re-read when its mtime, size or inode change (checked every second); a URL is fetched
// at start, every jwks_refresh, and early (at most once per kRefetchInterval) when a token named
// an unknown kid. A JWKS that cannot be had (missing file, failed fetch, not a JWKS, no usable
// key) leaves the keys the provider had — none at start, so its routes answer 503 — and is
// tried again with backoff (1 s doubling to 60 s). Each change of state is logged once.
// Thread safety: Start and Stop from one thread (the node's main thread); the fetch function
// runs on the updater's thread and must be safe there.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "core/result.hpp"

namespace ferry::auth {

class Provider;

class JwksUpdater {
 public:
  // Fetches the JWKS URL of a provider (its `jwks`, verified with its `jwks_ca` when https):
  // the body of a 200 response, or an error. Blocking; bounded by its own timeout.
  using Fetch = std::function<Result<std::string>(const config::JwtProvider& provider)>;

  explicit JwksUpdater(Fetch fetch, const Clock& clock = SystemClock());
  ~JwksUpdater();
  JwksUpdater(const JwksUpdater&) = delete;
  JwksUpdater& operator=(const JwksUpdater&) = delete;

  void Start();
  void Stop();

  // One pass over the live providers (what the thread does every tick); for tests.
  void RunOnce();

 private:
  void Update(Provider& provider, std::chrono::steady_clock::time_point now);
  void UpdateFile(Provider& provider);
  void UpdateUrl(Provider& provider, std::chrono::steady_clock::time_point now);
  // Parses and publishes; false (with the reason in `error`) when the text is not a usable JWKS.
  bool Load(Provider& provider, const std::string& text, std::string& error);
  void Failed(Provider& provider, std::chrono::steady_clock::time_point now, std::string error);

  Fetch fetch_;
  const Clock& clock_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ferry::auth
