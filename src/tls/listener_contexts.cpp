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
  std::vector<std::string> warnings;
  std::map<std::string, Entry> entries;
  Map contexts;
  for (const config::Listener& listener : config.listeners) {
    if (!listener.tls) continue;
    Entry entry;
    entry.tls = *listener.tls;
    if (entry.tls.mesh) entry.mesh = config.mesh;
    entry.files = FilesOf(entry.tls, entry.mesh);
    entry.stamps = Stamps(entry.files);
    auto old = entries_.find(listener.name);
    const bool have_old = old != entries_.end() && contexts_.count(listener.name) > 0;
    if (have_old && old->second.tls == entry.tls && old->second.mesh == entry.mesh &&
        old->second.stamps == entry.stamps) {
      contexts[listener.name] = contexts_.at(listener.name);
      entries[listener.name] = std::move(entry);
      continue;
    }
    auto built = ServerContext::Create(entry.tls, entry.mesh);
    if (built) {
      contexts[listener.name] = std::move(*built);
    } else if (have_old) {
      warnings.push_back(fmt::format("listener {}: {}; it keeps its current certificate",
                                     listener.name, built.error().message()));
      contexts[listener.name] = contexts_.at(listener.name);
    } else {
      return Fail(built.error().code(),
                  fmt::format("listener {}: {}", listener.name, built.error().message()));
    }
    entries[listener.name] = std::move(entry);
  }
  entries_ = std::move(entries);
  contexts_ = std::move(contexts);
  return warnings;
}

bool ListenerContexts::FilesChanged() const {
  for (const auto& [name, entry] : entries_) {
    if (Stamps(entry.files) != entry.stamps) return true;
  }
  return false;
}

}  // namespace ferry::tls
