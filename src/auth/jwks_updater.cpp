#include "auth/jwks_updater.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "auth/provider.hpp"

namespace ferry::auth {
namespace {

using std::chrono::seconds;

constexpr auto kTick = std::chrono::milliseconds(250);
constexpr auto kFirstBackoff = seconds(1);
constexpr auto kMaxBackoff = seconds(60);

std::string FileSignature(const struct stat& info) {
  return fmt::format("{}.{}:{}:{}", info.st_mtim.tv_sec, info.st_mtim.tv_nsec, info.st_size,
                     info.st_ino);
}

}  // namespace

JwksUpdater::JwksUpdater(Fetch fetch, const Clock& clock)
    : fetch_(std::move(fetch)), clock_(clock) {}

JwksUpdater::~JwksUpdater() { Stop(); }

void JwksUpdater::Start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      lock.unlock();
      RunOnce();
      lock.lock();
      wake_.wait_for(lock, kTick, [this] { return stopping_; });
    }
  });
}

void JwksUpdater::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void JwksUpdater::RunOnce() {
  const auto now = clock_.now();
  for (const auto& provider : LiveProviders()) {
    if (provider->needs_jwks()) Update(*provider, now);
  }
}

void JwksUpdater::Update(Provider& provider, std::chrono::steady_clock::time_point now) {
  Provider::UpdaterState& state = provider.updater_state();
  if (!state.started) {
    state.started = true;
    state.next_attempt = now;
  }
  if (provider.is_url()) {
    UpdateUrl(provider, now);
  } else if (now >= state.next_attempt) {
    provider.TakeRefetchWish();  // a file's changes are seen anyway
    state.next_attempt = now + seconds(1);
    UpdateFile(provider);
  }
}

void JwksUpdater::UpdateFile(Provider& provider) {
  Provider::UpdaterState& state = provider.updater_state();
  const std::string& path = provider.config().jwks;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) {
    Failed(provider, clock_.now(), fmt::format("cannot read JWKS file {}", path));
    state.file_signature.clear();
    return;
  }
  const std::string signature = FileSignature(info);
  if (signature == state.file_signature) return;
  state.file_signature = signature;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  std::string error;
  if (!in || !Load(provider, text.str(), error)) {
    Failed(provider, clock_.now(),
           error.empty() ? fmt::format("cannot read JWKS file {}", path) : error);
  }
}

void JwksUpdater::UpdateUrl(Provider& provider, std::chrono::steady_clock::time_point now) {
  Provider::UpdaterState& state = provider.updater_state();
  const bool due = now >= state.next_attempt;
  // An unknown kid is worth an early fetch, but not more often than kRefetchInterval: tokens
  // with made-up kids must not turn Ferry into a load generator against the provider.
  const bool early =
      !due && provider.TakeRefetchWish() && now >= state.last_attempt + kRefetchInterval;
  if (!due && !early) return;
  if (due) provider.TakeRefetchWish();
  state.last_attempt = now;
  auto body = fetch_(provider.config());
  std::string error;
  if (!body) {
    error = fmt::format("fetching {}: {}", provider.config().jwks, body.error().message());
  } else if (Load(provider, *body, error)) {
    state.next_attempt = now + provider.config().jwks_refresh;
    return;
  }
  Failed(provider, now, std::move(error));
}

bool JwksUpdater::Load(Provider& provider, const std::string& text, std::string& error) {
  auto jwks = ParseJwks(text);
  if (!jwks) {
    error =
        fmt::format("JWKS of {} is not valid: {}", provider.config().jwks, jwks.error().message());
    return false;
  }
  if (jwks->keys.empty()) {
    error = fmt::format("JWKS of {} has no usable key{}", provider.config().jwks,
                        jwks->skipped ? " (first skipped: " + jwks->first_skip + ")" : "");
    return false;
  }
  Provider::UpdaterState& state = provider.updater_state();
  spdlog::info(
      "jwt provider {}: {} key(s) loaded from {}{}", provider.config().name, jwks->keys.size(),
      provider.config().jwks,
      jwks->skipped ? fmt::format(", {} skipped ({})", jwks->skipped, jwks->first_skip) : "");
  provider.Publish(std::make_shared<const Jwks>(std::move(*jwks)));
  state.backoff = {};
  state.last_error.clear();
  return true;
}

void JwksUpdater::Failed(Provider& provider, std::chrono::steady_clock::time_point now,
                         std::string error) {
  Provider::UpdaterState& state = provider.updater_state();
  state.backoff =
      state.backoff == std::chrono::steady_clock::duration{}
          ? std::chrono::steady_clock::duration(kFirstBackoff)
          : std::min<std::chrono::steady_clock::duration>(state.backoff * 2, kMaxBackoff);
  if (provider.is_url()) state.next_attempt = now + state.backoff;
  if (error != state.last_error) {
    spdlog::warn("jwt provider {}: {}; {}", provider.config().name, error,
                 provider.keys() ? "keeping the keys it had"
                                 : "its routes answer 503 jwks_unavailable until it loads");
    state.last_error = std::move(error);
  }
}

}  // namespace ferry::auth
