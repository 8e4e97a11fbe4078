#include "tls/listener_contexts.hpp"

#include <fmt/format.h>
#include <sys/stat.h>

namespace ferry::tls {

std::vector<ListenerContexts::FileStamp> ListenerContexts::Stamps(
    const std::vector<std::string>& files) {
  std::vector<FileStamp> out;
  out.reserve(files.size());
  for (const std::string& path : files) {
    struct stat st {};
    FileStamp stamp;
    if (::stat(path.c_str(), &st) == 0) {
      stamp = {static_cast<unsigned long>(st.st_ino), static_cast<long>(st.st_size),
               static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
    }
    out.push_back(stamp);
  }
  return out;
}

Result<std::vector<std::string>> ListenerContexts::Sync(const config::Config& config) {
  // Every listener with tls: the key of its context, how messages name it, its settings.
  struct Wanted {
    std::string key;
    std::string label;
    const config::ListenerTls* tls;
    Alpn alpn = Alpn::kHttp11;
  };
  std::vector<Wanted> wanted;
  for (const config::Listener& listener : config.listeners) {
    if (listener.tls)
      wanted.push_back({listener.name, "listener " + listener.name, &*listener.tls,
                        listener.http2 ? Alpn::kH2AndHttp11 : Alpn::kHttp11});
  }
  if (config.admin.tls) wanted.push_back({kAdminContext, "admin", &*config.admin.tls});
  if (config.bus && config.bus->tls) wanted.push_back({kBusContext, "bus", &*config.bus->tls});

  std::vector<std::string> warnings;
  std::map<std::string, Entry> entries;
  Map contexts;
  for (const Wanted& want : wanted) {
    Entry entry;
    entry.tls = *want.tls;
    entry.alpn = want.alpn;
    if (entry.tls.mesh) entry.mesh = config.mesh;
    entry.files = FilesOf(entry.tls, entry.mesh);
    entry.stamps = Stamps(entry.files);
    auto old = entries_.find(want.key);
    const bool have_old = old != entries_.end() && contexts_.count(want.key) > 0;
    if (have_old && old->second.tls == entry.tls && old->second.mesh == entry.mesh &&
        old->second.alpn == entry.alpn && old->second.stamps == entry.stamps) {
      contexts[want.key] = contexts_.at(want.key);
      entries[want.key] = std::move(entry);
      continue;
    }
    auto built =
        ServerContext::Create(entry.tls, entry.mesh, ClientCertificates::kRequired, entry.alpn);
    if (built) {
      contexts[want.key] = std::move(*built);
    } else if (have_old) {
      warnings.push_back(fmt::format("{}: {}; it keeps its current certificate", want.label,
                                     built.error().message()));
      contexts[want.key] = contexts_.at(want.key);
    } else {
      return Fail(built.error().code(), fmt::format("{}: {}", want.label, built.error().message()));
    }
    entries[want.key] = std::move(entry);
  }
  entries_ = std::move(entries);
  contexts_ = std::move(contexts);
  return warnings;
}

std::shared_ptr<const ServerContext> ListenerContexts::Find(const std::string& key) const {
  auto it = contexts_.find(key);
  return it == contexts_.end() ? nullptr : it->second;
}

bool ListenerContexts::FilesChanged() const {
  for (const auto& [name, entry] : entries_) {
    if (Stamps(entry.files) != entry.stamps) return true;
  }
  return false;
}

}  // namespace ferry::tls
