#include "app/validate.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "app/exit_code.hpp"
#include "app/jwks_fetch.hpp"
#include "config/config.hpp"
#include "mesh/atomic_file.hpp"
#include "mesh/workload_cert.hpp"
#include "tls/client_context.hpp"
#include "tls/listener_contexts.hpp"

namespace ferry::app {
namespace {

bool UsesMeshTls(const std::optional<config::ListenerTls>& tls) { return tls && tls->mesh; }

// The config without the TLS that needs the node's mesh certificate.
std::shared_ptr<config::Config> WithoutMeshTls(const config::Config& config) {
  auto copy = std::make_shared<config::Config>(config);
  for (config::Listener& listener : copy->listeners) {
    if (UsesMeshTls(listener.tls)) listener.tls.reset();
  }
  for (auto& [name, service] : copy->services) {
    if (service.tls && service.tls->mesh) service.tls.reset();
  }
  if (UsesMeshTls(copy->admin.tls)) copy->admin.tls.reset();
  if (copy->bus && UsesMeshTls(copy->bus->tls)) copy->bus->tls.reset();
  return copy;
}

// A node that gets its mesh certificate from `ferry ca serve` has no certificate before its
// first start (mesh.renew set, neither file there yet).
bool Bootstrapping(const config::Config& config) {
  if (!config.mesh || !config.mesh->renew) return false;
  std::error_code ec;
  return !std::filesystem::exists(config.mesh->cert, ec) &&
         !std::filesystem::exists(config.mesh->key, ec);
}

// What such a node's start needs to get its certificate: the mesh CA bundle naming a trust
// domain, and a readable token file.
Result<void> CheckBootstrapFiles(const config::Mesh& mesh) {
  if (auto domain = mesh::TrustDomainOfBundle(mesh.ca); !domain) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("mesh.ca: {}", domain.error().message()));
  }
  if (mesh.renew->token_file.empty()) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("mesh.cert {} does not exist and mesh.renew has no token_file to get "
                            "the first certificate with",
                            mesh.cert));
  }
  if (auto token = mesh::ReadWholeFile(mesh.renew->token_file); !token) {
    return Fail(ErrorCode::kInvalidArgument,
                fmt::format("mesh.renew.token_file: {}", token.error().message()));
  }
  return Ok();
}

}  // namespace

int Validate(const std::string& path) {
  auto loaded = config::LoadFile(path);
  if (!loaded) {
    fmt::print(stderr, "{}\n", loaded.error().message());
    return kExitFailure;
  }
  std::shared_ptr<const config::Config> config = *loaded;
  // Before a bootstrapping node's first start the contexts that need its mesh certificate are
  // left out; what it needs to get one is checked after the other files.
  const bool bootstrap = Bootstrapping(*config);
  if (bootstrap) config = WithoutMeshTls(*config);
  // The certificate and key files, as the node would load them at start.
  if (auto tls = tls::ListenerContexts().Sync(*config); !tls) {
    fmt::print(stderr, "{}: {}\n", path, tls.error().message());
    return kExitFailure;
  }
  // And the files of the services' tls: (CA bundles, client certificates, the mesh's).
  if (auto upstream = tls::ClientTlsRegistry().Apply(*config); !upstream) {
    fmt::print(stderr, "{}: upstream TLS: {}\n", path, upstream.error().message());
    return kExitFailure;
  }
  if (auto cas = CheckJwksCas(*config); !cas) {
    fmt::print(stderr, "{}: {}\n", path, cas.error().message());
    return kExitFailure;
  }
  if (bootstrap) {
    if (auto files = CheckBootstrapFiles(*(*loaded)->mesh); !files) {
      fmt::print(stderr, "{}: {}\n", path, files.error().message());
      return kExitFailure;
    }
  }
  fmt::print("{}: ok ({} listener(s), {} service(s))\n", path, (*loaded)->listeners.size(),
             (*loaded)->services.size());
  if (bootstrap) {
    fmt::print(
        "{}: the mesh certificate is not issued yet: mesh.ca and mesh.renew.token_file were "
        "checked; the node gets its certificate from {} at its first start\n",
        path, (*loaded)->mesh->renew->url);
  }
  return kExitOk;
}

}  // namespace ferry::app
