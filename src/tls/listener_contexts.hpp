// ListenerContexts: the node's TLS contexts of its listeners, kept across reloads: the proxy's
// listeners (by name), the admin API's (`admin.tls`, as kAdminContext) and the bus API's
// (`bus.tls`, as kBusContext). Sync builds a context for each with `tls:` and keeps the one it has
// when neither the listener's tls (nor the mesh block it uses) nor any of its files changed on
// disk, so a reload that touches nothing TLS keeps session tickets valid. A listener whose new
// files are broken keeps its old context (the error is returned as a warning); one without an old
// context fails the sync. FilesChanged tells the node's file watch that a certificate, key or CA
// file changed since the last Sync (checked once a second with stat, like the config file). Thread
// safety: the node's main thread only; the contexts it hands out are immutable and shared with the
// workers.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "core/result.hpp"
#include "tls/server_context.hpp"

namespace ferry::tls {

class ListenerContexts {
 public:
  using Map = std::map<std::string, std::shared_ptr<const ServerContext>>;
  // The keys of the admin and bus API listeners' contexts (no listener name has parentheses).
  static constexpr char kAdminContext[] = "(admin)";
  static constexpr char kBusContext[] = "(bus)";

  // On success: the messages of listeners that kept an old context ("listener NAME: ...").
  Result<std::vector<std::string>> Sync(const config::Config& config);
  bool FilesChanged() const;
  const Map& contexts() const { return contexts_; }
  // The context under `key`, or null (plain TCP).
  std::shared_ptr<const ServerContext> Find(const std::string& key) const;

 private:
  struct FileStamp {
    unsigned long inode = 0;
    long size = 0;
    long long mtime_ns = 0;
    bool operator==(const FileStamp&) const = default;
  };
  struct Entry {
    config::ListenerTls tls;
    std::optional<config::Mesh> mesh;  // the mesh block, for tls: mesh
    Alpn alpn = Alpn::kHttp11;         // h2 offered when the listener has HTTP/2 on
    std::vector<std::string> files;
    std::vector<FileStamp> stamps;  // of `files` at the last attempt to build
  };
  static std::vector<FileStamp> Stamps(const std::vector<std::string>& files);

  std::map<std::string, Entry> entries_;
  Map contexts_;
};

}  // namespace ferry::tls
