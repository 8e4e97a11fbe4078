// The permission check every private key file passes before Ferry reads it: a key that group or
// others can read is refused (chmod 600 it), so a key never sits readable by accident.
// Thread safety: a plain function (one stat call).
#pragma once

#include <string>

#include "core/result.hpp"

namespace ferry::tls {

// Ok if `path` is a regular file (after symlinks) that group and others can neither read nor
// write; else kFailedPrecondition (or kNotFound) with a message naming the file and the fix.
Result<void> CheckPrivateKeyFile(const std::string& path);

}  // namespace ferry::tls
