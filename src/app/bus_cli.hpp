// The bus commands of the CLI, run against a node's bus API (docs/bus.md):
//   ferry publish   --queue Q | --topic T  [--data S | --file P | stdin]  [CloudEvents options]
//   ferry consume   --queue Q | --topic T --subscription S  [--max N] [--wait D] [--ack|--nack]
//   ferry dlq list|replay  --queue Q | --topic T --subscription S  [--id ID ...]
// BusCli registers them on the CLI11 app and runs the one that was parsed. Single-threaded; the
// app must outlive it. Exit codes as in exit_code.hpp: an error answer from the node is printed
// (its JSON error message) and is exit 1, like a node that cannot be reached.
#pragma once

#include <string>
#include <vector>

#include "app/http_client.hpp"

namespace CLI {
class App;
class Option;
}  // namespace CLI

namespace ferry::app {

// Which inbox or log a command names. Validated by TargetError before use.
struct BusTarget {
  std::string queue;         // set for a queue
  std::string topic;         // set for a topic
  std::string subscription;  // with a topic, for consume and dead letters
};

// Why `target` is not usable ("" when it is). `need_subscription`: consume and dlq read a
// subscription's inbox, so a topic needs one; publish writes to the topic itself.
std::string TargetError(const BusTarget& target, bool need_subscription);

// "/v1/queues/Q" or "/v1/topics/T/subscriptions/S" (or "/v1/topics/T" without a subscription),
// names percent-encoded.
std::string InboxPath(const BusTarget& target);

struct PublishOptions {
  BusTarget target;
  std::string id;            // ce-id, or Idempotency-Key in plain mode; "" = none given
  std::string key;           // ce-partitionkey
  std::string type;          // ce-type
  std::string source;        // ce-source
  std::string subject;       // ce-subject
  std::string content_type;  // Content-Type; "" = none sent
  std::string delay;         // ?delay=, a duration as the API takes it; "" = none
};

// The defaults binary mode uses when only some CloudEvents attributes are given.
inline constexpr char kDefaultType[] = "ferry.cli.message";
inline constexpr char kDefaultSource[] = "ferry-cli";

// The publish request. Binary mode (ce-* headers) when any of type, source, subject or key is
// given, with the missing required attributes defaulted and a random id when none is given
// (`new_id` supplies it); else a plain body, with Idempotency-Key when an id is given.
HttpRequest BuildPublishRequest(const PublishOptions& options, std::string body,
                                std::string (*new_id)());

// A one-line description of an error answer: "HTTP 404: no queue 'x'" from the API's
// {"error": {"message"}} body, or the start of the body when it is not that JSON.
std::string DescribeErrorAnswer(const HttpResponse& response);

class BusCli {
 public:
  // Adds the publish, consume and dlq subcommands to `app`.
  explicit BusCli(CLI::App& app);
  BusCli(const BusCli&) = delete;  // CLI11 holds pointers into the option fields
  BusCli& operator=(const BusCli&) = delete;

  // True if the parsed command line chose one of these subcommands.
  bool Selected() const;
  // Runs the chosen subcommand; returns the exit code.
  int Run();

 private:
  int Publish();
  int Consume();
  int ListDeadLetters();
  int ReplayDeadLetters();

  CLI::App* publish_ = nullptr;
  CLI::App* consume_ = nullptr;
  CLI::App* dlq_ = nullptr;
  CLI::App* dlq_list_ = nullptr;
  CLI::App* dlq_replay_ = nullptr;

  std::string url_text_ = "http://127.0.0.1:8081";
  std::string ca_file_;  // --ca: verifies an https:// --url; "" = the system's store
  PublishOptions publish_options_;
  CLI::Option* data_option_ = nullptr;
  std::string data_;  // --data (may be given and empty)
  std::string file_;  // --file
  BusTarget target_;  // consume and dlq
  int max_ = 0;       // 0 = the command's default
  std::string wait_ = "0s";
  bool ack_ = false;
  bool nack_ = false;
  std::vector<std::string> ids_;  // dlq replay --id
};

}  // namespace ferry::app
