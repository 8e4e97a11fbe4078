// The CA commands of the CLI (src/mesh/ca.hpp, docs/security.md#ferry-ca):
//   ferry ca init  --dir DIR --trust-domain DOMAIN [--ttl 87600h]
//   ferry ca issue --dir DIR --service NAME [--ttl 24h]
//   ferry ca token --dir DIR --service NAME [--ttl 1h]      (prints a one-time bootstrap token)
//   ferry ca serve --dir DIR --listen IP:PORT [--ttl 24h] [--cert F --key F] [--name N...]
// CaCli registers them on the CLI11 app and runs the one that was parsed. Single-threaded; the
// app must outlive it. Exit codes as in exit_code.hpp: a bad name or duration is a usage error
// (2, checked while parsing); a CA that exists already or cannot be read or written is 1;
// `serve` runs until SIGTERM/SIGINT (0) or cannot start (1).
#pragma once

#include <string>
#include <vector>

namespace CLI {
class App;
}  // namespace CLI

namespace ferry::app {

class CaCli {
 public:
  // Adds `ca` with its subcommands to `app`.
  explicit CaCli(CLI::App& app);
  CaCli(const CaCli&) = delete;  // CLI11 holds pointers into the option fields
  CaCli& operator=(const CaCli&) = delete;

  // True if the parsed command line chose `ca`.
  bool Selected() const;
  // Runs the chosen subcommand; returns the exit code.
  int Run();

 private:
  int Init();
  int Issue();
  int Token();
  int Serve();

  CLI::App* ca_ = nullptr;
  CLI::App* init_ = nullptr;
  CLI::App* issue_ = nullptr;
  CLI::App* token_ = nullptr;
  CLI::App* serve_ = nullptr;
  std::string dir_;
  std::string trust_domain_;
  std::string service_;
  std::string init_ttl_ = "87600h";
  std::string issue_ttl_ = "24h";
  std::string token_ttl_ = "1h";
  std::string serve_ttl_ = "24h";
  std::string listen_;
  std::string cert_;
  std::string key_;
  std::vector<std::string> names_;
};

}  // namespace ferry::app
