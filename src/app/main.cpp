// ferry: the command line. Exit codes (app/exit_code.hpp): 0 ok, 1 bad config or runtime
// failure, 2 bad usage. The bus commands (publish, consume, dlq) live in bus_cli.cpp, the CA's
// (ca init, issue, token, serve) in ca_cli.cpp.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <string>

#include "app/bus_cli.hpp"
#include "app/ca_cli.hpp"
#include "app/exit_code.hpp"
#include "app/node.hpp"
#include "app/validate.hpp"

namespace {

using ferry::app::kExitOk;
using ferry::app::kExitUsage;

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed socket or stdout pipe is an error value, not a kill
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"Ferry: edge gateway, sidecar and message bus in one binary.", "ferry"};
  app.require_subcommand(1);
  std::string config_path;

  CLI::App* run = app.add_subcommand("run", "Run a node from a config file.");
  run->add_option("-c,--config", config_path, "YAML config file")->required();
  std::string log_level = "info";
  run->add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  CLI::App* validate = app.add_subcommand(
      "validate", "Check a config file; print errors as file:line:col: message; exit 0 or 1.");
  validate->add_option("-c,--config", config_path, "YAML config file")->required();

  app.add_subcommand("version", "Print the version.");
  ferry::app::BusCli bus_cli(app);
  ferry::app::CaCli ca_cli(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return kExitUsage;
  }

  if (app.got_subcommand("version")) {
    fmt::print("ferry {}\n", FERRY_VERSION);
    return kExitOk;
  }
  if (app.got_subcommand("validate")) return ferry::app::Validate(config_path);
  if (bus_cli.Selected()) return bus_cli.Run();
  if (ca_cli.Selected()) return ca_cli.Run();
  spdlog::set_level(spdlog::level::from_str(log_level));
  return ferry::app::RunNode(config_path);
}
