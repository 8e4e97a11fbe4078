// Files written so that a reader never sees half of one and a crash never leaves a torn one:
// a temporary name in the same directory, fsync, a rename (or a link, to refuse an existing
// file), then an fsync of the directory so the new name itself survives a crash. Blocking file
// I/O, for the CA's tools and the node's renewer thread; never on an event loop.
#pragma once

#include <sys/types.h>

#include <string>

#include "core/result.hpp"

namespace ferry::mesh {

// Writes `bytes` to `path` with `mode` from the start (a key is never readable by others, not
// even for a moment). `exclusive`: fail with kAlreadyExists if `path` exists. kIo otherwise.
Result<void> WriteFileAtomically(const std::string& path, const std::string& bytes, mode_t mode,
                                 bool exclusive);

// fsync of a directory: makes a rename, link or unlink in it durable. kIo on failure.
Result<void> SyncDirectory(const std::string& dir);

// The whole file; kNotFound when it does not exist, kIo for another failure.
Result<std::string> ReadWholeFile(const std::string& path);

}  // namespace ferry::mesh
