// The exit codes of every `ferry` subcommand.
#pragma once

namespace ferry::app {

constexpr int kExitOk = 0;       // done
constexpr int kExitFailure = 1;  // bad config, runtime failure, or the node answered an error
constexpr int kExitUsage = 2;    // bad command line (unknown option, missing or bad value)

}  // namespace ferry::app
