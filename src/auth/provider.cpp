#include "auth/provider.hpp"

#include <spdlog/spdlog.h>

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

namespace ferry::auth {
namespace {

std::mutex& RegistryMutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, std::weak_ptr<Provider>>& Registry() {
  static std::map<std::string, std::weak_ptr<Provider>> providers;
  return providers;
}

std::atomic<observability::Family<observability::Counter>*> g_counters{nullptr};

JwtOptions OptionsOf(const config::JwtProvider& config, std::string secret) {
  JwtOptions options;
  options.issuer = config.issuer;
  options.audiences = config.audiences;
  options.algorithms = AcceptedAlgorithms(config);
  options.hmac_secret = std::move(secret);
  options.clock_skew = std::chrono::duration_cast<std::chrono::seconds>(config.clock_skew);
  return options;
}

std::string ReadSecret(const config::JwtProvider& config) {
  if (config.secret_file.empty()) return {};
  std::ifstream in(config.secret_file, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in) {
    spdlog::error("jwt provider {}: cannot read secret_file {}: its HMAC tokens are refused",
                  config.name, config.secret_file);
    return {};
  }
  return bytes.str();
}

}  // namespace

Provider::Provider(config::JwtProvider config, std::string secret)
    : config_(std::move(config)), verifier_(OptionsOf(config_, std::move(secret))) {}

bool Provider::is_url() const {
  return config_.jwks.starts_with("http://") || config_.jwks.starts_with("https://");
}

std::vector<Algorithm> AcceptedAlgorithms(const config::JwtProvider& config) {
  std::vector<Algorithm> out;
  for (const std::string& name : config.algorithms) {
    if (auto algorithm = AlgorithmFromName(name)) out.push_back(*algorithm);
  }
  if (config.algorithms.empty()) {
    out.assign(AsymmetricAlgorithms().begin(), AsymmetricAlgorithms().end());
  }
  return out;
}

std::shared_ptr<Provider> ProviderFor(const config::JwtProvider& config) {
  std::lock_guard lock(RegistryMutex());
  auto& registry = Registry();
  std::erase_if(registry, [](const auto& entry) { return entry.second.expired(); });
  std::shared_ptr<Provider> old = registry[config.name].lock();
  if (old && old->config() == config) return old;
  auto made = std::make_shared<Provider>(config, ReadSecret(config));
  if (old && old->config().jwks == config.jwks) made->Publish(old->keys());
  registry[config.name] = made;
  return made;
}

std::vector<std::shared_ptr<Provider>> LiveProviders() {
  std::lock_guard lock(RegistryMutex());
  std::vector<std::shared_ptr<Provider>> out;
  for (const auto& [name, weak] : Registry()) {
    if (auto provider = weak.lock()) out.push_back(std::move(provider));
  }
  return out;
}

void SetVerificationCounters(observability::Family<observability::Counter>* family) {
  g_counters.store(family);
}

observability::Family<observability::Counter>* VerificationCounters() { return g_counters.load(); }

}  // namespace ferry::auth
