// Reading of the security issue's TLS keys into config.hpp's shapes, with the loader's
// strictness: a listener's `tls:` (here), a service's `tls:` and the `mesh:` block (beside it).
// Only the shape is checked here; the files themselves (they exist, parse, the key fits the
// certificate and is not readable by others) are checked when TLS contexts are built
// (src/tls: at start, on reload, and by `ferry validate`), so a config can be read on a machine
// without them. Internal to src/config; loader.cpp calls these and checks what needs the rest
// of the file (`tls: mesh` needs a `mesh:` block).
// Not thread-safe; never throws: problems go to Diagnostics.
#pragma once

#include <optional>

#include "config/config.hpp"
#include "config/yaml_reader.hpp"

namespace ferry::config::internal {

// `tls: mesh` or `tls: {cert, key, certificates: [{cert, key}], min_version, ciphers,
// client_ca, session_resumption}`.
std::optional<ListenerTls> ReadListenerTls(const Field& field, Diagnostics& diags);
// `tls: mesh` or `tls: {ca, server_name, pin_sha256: [...], client_certificate: {cert, key},
// min_version}` of a service.
std::optional<ServiceTls> ReadServiceTls(const Field& field, Diagnostics& diags);
// `mesh: {cert, key, ca, renew: {url, service, token_file}}`.
std::optional<Mesh> ReadMesh(const Field& field, Diagnostics& diags);

}  // namespace ferry::config::internal
