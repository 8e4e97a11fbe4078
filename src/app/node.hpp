// A running Ferry node: loads the config, starts the workers, listeners and the admin API, and
// handles reload (SIGHUP or a change of the config file) and graceful shutdown (SIGTERM/SIGINT).
// Thread safety: everything here runs on the main thread's event loop; workers are reached only
// by posting to them.
#pragma once

#include <string>

namespace ferry::app {

// Runs until shut down; returns the process exit code (0 after a clean drain, 1 if the config
// is bad or the node could not start).
int RunNode(const std::string& config_path);

}  // namespace ferry::app
