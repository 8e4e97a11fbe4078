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
#include "app/jwks_fetch.hpp"
#include "app/node.hpp"
#include "config/config.hpp"
#include "tls/client_context.hpp"
#include "tls/listener_contexts.hpp"

namespace {

using ferry::app::kExitFailure;
using ferry::app::kExitOk;
using ferry::app::kExitUsage;

int Validate(const std::string& path) {
  auto config = ferry::config::LoadFile(path);
  if (!config) {
    fmt::print(stderr, "{}\n", config.error().message());
    return kExitFailure;
  }
  // The certificate and key files, as the node would load them at start.
  if (auto tls = ferry::tls::ListenerContexts().Sync(**config); !tls) {
    fmt::print(stderr, "{}: {}\n", path, tls.error().message());
    return kExitFailure;
  }
  // And the files of the services' tls: (CA bundles, client certificates, the mesh's).
  if (auto upstream = ferry::tls::ClientTlsRegistry().Apply(**config); !upstream) {
    fmt::print(stderr, "{}: upstream TLS: {}\n", path, upstream.error().message());
    return kExitFailure;
  }
  if (auto cas = ferry::app::CheckJwksCas(**config); !cas) {
    fmt::print(stderr, "{}: {}\n", path, cas.error().message());
    return kExitFailure;
  }
  fmt::print("{}: ok ({} listener(s), {} service(s))\n", path, (*config)->listeners.size(),
             (*config)->services.size());
  return kExitOk;
}

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
  if (app.got_subcommand("validate")) return Validate(config_path);
  if (bus_cli.Selected()) return bus_cli.Run();
  if (ca_cli.Selected()) return ca_cli.Run();
  spdlog::set_level(spdlog::level::from_str(log_level));
  return ferry::app::RunNode(config_path);
}
