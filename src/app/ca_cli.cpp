#include "app/ca_cli.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "app/ca_server.hpp"
#include "app/exit_code.hpp"
#include "core/units.hpp"
#include "mesh/ca.hpp"
#include "mesh/spiffe.hpp"
#include "mesh/token_store.hpp"

namespace ferry::app {
namespace {

const CLI::Validator& TtlCheck() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        auto d = ParseDuration(text);
        if (!d) return d.error().message();
        if (*d < std::chrono::seconds(1)) return "a ttl is at least 1s";
        return "";
      },
      "DURATION");
  return check;
}

const CLI::Validator& TrustDomainCheck() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        if (mesh::IsValidTrustDomain(text)) return "";
        return fmt::format("'{}' is not a trust domain (1 to 255 of a-z, 0-9, '.', '-', '_')",
                           text);
      },
      "DOMAIN");
  return check;
}

const CLI::Validator& ServiceCheck() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        if (mesh::IsValidServiceName(text)) return "";
        return fmt::format("'{}' is not a service name (1 to 128 of A-Z, a-z, 0-9, '.', '-', '_')",
                           text);
      },
      "NAME");
  return check;
}

}  // namespace

CaCli::CaCli(CLI::App& app) {
  ca_ = app.add_subcommand("ca",
                           "The mesh's certificate authority: make a root, issue workload "
                           "certificates, hand out bootstrap tokens, serve renewals "
                           "(docs/security.md).");

  ca_->require_subcommand(1);

  init_ = ca_->add_subcommand("init", "Make a root CA in DIR (ca.pem, ca.key); never overwrites.");
  init_->add_option("--dir", dir_, "Directory of the CA (created if missing)")->required();
  init_->add_option("--trust-domain", trust_domain_, "Trust domain, e.g. example.org")
      ->required()
      ->check(TrustDomainCheck());
  init_->add_option("--ttl", init_ttl_, "Life of the root certificate")
      ->check(TtlCheck())
      ->capture_default_str();

  issue_ = ca_->add_subcommand(
      "issue",
      "Issue DIR/NAME.pem and DIR/NAME.key (0600): spiffe://DOMAIN/service/NAME, signed by the "
      "CA in DIR; replaces earlier ones.");
  issue_->add_option("--dir", dir_, "Directory of the CA (made by `ferry ca init`)")->required();
  issue_->add_option("--service", service_, "Service name, the identity's last segment")
      ->required()
      ->check(ServiceCheck());
  issue_->add_option("--ttl", issue_ttl_, "Life of the certificate")
      ->check(TtlCheck())
      ->capture_default_str();

  token_ = ca_->add_subcommand(
      "token",
      "Print a one-time bootstrap token for NAME: a node without a certificate gets its first "
      "one from `ferry ca serve` with it (mesh.renew.token_file). DIR keeps only its hash.");
  token_->add_option("--dir", dir_, "Directory of the CA (made by `ferry ca init`)")->required();
  token_->add_option("--service", service_, "The service the token is for")
      ->required()
      ->check(ServiceCheck());
  token_->add_option("--ttl", token_ttl_, "How long the token may be used (once)")
      ->check(TtlCheck())
      ->capture_default_str();

  serve_ = ca_->add_subcommand(
      "serve",
      "Run the CA as an HTTPS service (POST /v1/sign with a PEM CSR): nodes renew their "
      "certificates with their current one, or get a first one with a bootstrap token. Runs "
      "until SIGTERM or SIGINT.");
  serve_->add_option("--dir", dir_, "Directory of the CA (made by `ferry ca init`)")->required();
  serve_->add_option("--listen", listen_, "Address to listen on, IP:PORT (port 0: any; logged)")
      ->required();
  serve_->add_option("--ttl", serve_ttl_, "Life of the certificates it signs")
      ->check(TtlCheck())
      ->capture_default_str();
  serve_->add_option("--cert", cert_,
                     "The server's certificate (PEM); default: one the CA issues itself at start "
                     "(DIR/serve.pem) naming the listen address");
  serve_->add_option("--key", key_, "The server certificate's key (mode 0600)");
  serve_->add_option("--name", names_,
                     "Another DNS name or IP for the issued server certificate (repeatable)");
}

bool CaCli::Selected() const { return ca_->parsed(); }

int CaCli::Run() {
  if (init_->parsed()) return Init();
  if (issue_->parsed()) return Issue();
  if (token_->parsed()) return Token();
  if (serve_->parsed()) return Serve();
  return kExitUsage;
}

int CaCli::Init() {
  auto made = mesh::InitCa(dir_, trust_domain_, *ParseDuration(init_ttl_));
  if (!made) {
    fmt::print(stderr, "ferry ca init: {}\n", made.error().message());
    return kExitFailure;
  }
  fmt::print("{}/ca.pem: root of {} (key {}/ca.key, mode 0600)\n", dir_,
             mesh::TrustDomainId(trust_domain_), dir_);
  return kExitOk;
}

int CaCli::Issue() {
  auto issued = mesh::IssueService(dir_, service_, *ParseDuration(issue_ttl_));
  if (!issued) {
    fmt::print(stderr, "ferry ca issue: {}\n", issued.error().message());
    return kExitFailure;
  }
  fmt::print("{}: {} until {:%Y-%m-%dT%H:%M:%SZ} (key {}, mode 0600)\n", issued->cert_path,
             issued->spiffe_id,
             std::chrono::time_point_cast<std::chrono::seconds>(issued->not_after),
             issued->key_path);
  return kExitOk;
}

int CaCli::Token() {
  auto token = mesh::TokenStore(dir_).Create(service_, *ParseDuration(token_ttl_));
  if (!token) {
    fmt::print(stderr, "ferry ca token: {}\n", token.error().message());
    return kExitFailure;
  }
  // The token alone on stdout, for `> token_file`; what it is for on stderr.
  fmt::print("{}\n", *token);
  fmt::print(stderr, "a one-time token for service {}, valid for {}\n", service_, token_ttl_);
  return kExitOk;
}

int CaCli::Serve() {
  if (cert_.empty() != key_.empty()) {
    fmt::print(stderr, "ferry ca serve: --cert and --key go together\n");
    return kExitUsage;
  }
  CaServeOptions options;
  options.dir = dir_;
  options.listen = listen_;
  options.ttl = *ParseDuration(serve_ttl_);
  options.cert = cert_;
  options.key = key_;
  options.names = names_;
  return RunCaServer(options);
}

}  // namespace ferry::app
