#include "app/bus_cli.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>

#include "app/exit_code.hpp"
#include "app/verified_send.hpp"
#include "bus/api/json_span.hpp"
#include "core/units.hpp"
#include "observability/json_text.hpp"

namespace ferry::app {
namespace {

constexpr std::chrono::milliseconds kRequestTimeout{10'000};  // on top of a consume's --wait
constexpr char kUrlHelp[] = "The node's bus API (its bus: listen address)";

// A random id in the UUID version 4 layout, for events published without --id.
std::string NewEventId() {
  std::random_device random;
  std::uniform_int_distribution<unsigned> byte(0, 255);
  unsigned char b[16];
  for (unsigned char& x : b) x = static_cast<unsigned char>(byte(random));
  b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
  return fmt::format(
      "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-"
      "{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
      b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
      b[15]);
}

const CLI::Validator& DurationCheck() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        auto d = ParseDuration(text);
        return d ? std::string() : d.error().message();
      },
      "DURATION");
  return check;
}

const CLI::Validator& UrlCheck() {
  static const CLI::Validator check(
      [](std::string& text) -> std::string {
        auto url = ParseUrl(text);
        return url ? std::string() : url.error().message();
      },
      "URL");
  return check;
}

void AddUrlOption(CLI::App* command, std::string& url, std::string& ca) {
  command->add_option("--url", url, kUrlHelp)
      ->envname("FERRY_BUS_URL")
      ->check(UrlCheck())
      ->capture_default_str();
  command
      ->add_option("--ca", ca,
                   "CA bundle that verifies an https:// --url (default: the system's store)")
      ->envname("FERRY_BUS_CA")
      ->check(CLI::ExistingFile);
}

// --queue, --topic and (for commands that read an inbox) --subscription, checked together once
// the subcommand is parsed, so a wrong combination is a usage error (exit 2).
void AddTargetOptions(CLI::App* command, BusTarget& target, bool with_subscription) {
  command->add_option("-q,--queue", target.queue, "Queue name");
  command->add_option("-t,--topic", target.topic, "Topic name");
  if (with_subscription) {
    command->add_option("-s,--subscription", target.subscription,
                        "Subscription of --topic whose messages are read");
  }
  command->parse_complete_callback([&target, with_subscription] {
    if (std::string why = TargetError(target, with_subscription); !why.empty()) {
      throw CLI::ValidationError(why);
    }
  });
}

std::string JoinForQuery(const std::string& path, std::string_view name, std::string_view value,
                         bool first) {
  return path + (first ? "?" : "&") + std::string(name) + "=" + PercentEncode(value);
}

HttpRequest JsonPost(std::string target, const boost::json::object& body) {
  HttpRequest request;
  request.method = "POST";
  request.target = std::move(target);
  request.headers.emplace_back("content-type", "application/json");
  request.body = observability::JsonText(body);
  return request;
}

boost::json::array ToJsonArray(const std::vector<std::string>& items) {
  boost::json::array out;
  for (const std::string& s : items) out.emplace_back(s);
  return out;
}

// Sends one request; prints why and returns nullopt when there is no 2xx answer.
std::optional<HttpResponse> Call(std::string_view command, const Url& url,
                                 const HttpRequest& request, std::chrono::milliseconds timeout,
                                 const std::string& ca) {
  auto response = SendVerified(url, request, timeout, ca);
  if (!response) {
    fmt::print(stderr, "ferry {}: {}\n", command, response.error().message());
    if (response.error().code() == ErrorCode::kUnavailable) {
      fmt::print(stderr,
                 "  (is a node with a bus: block listening there? --url sets the address)\n");
    }
    return std::nullopt;
  }
  if (response->status < 200 || response->status > 299) {
    fmt::print(stderr, "ferry {}: {}\n", command, DescribeErrorAnswer(*response));
    return std::nullopt;
  }
  return std::move(*response);
}

// The elements of the array `key` of a JSON object body, each as the exact text the node sent
// (Boost.JSON would turn an event's 12345678901234567890123 into a double when printed again),
// or nullopt after printing why.
std::optional<std::vector<std::string_view>> ArrayField(std::string_view command,
                                                        std::string_view body,
                                                        std::string_view key) {
  if (auto members = bus::JsonObjectMembers(body)) {
    for (const auto& member : *members) {
      if (member.key != key) continue;
      if (auto elements = bus::JsonArrayElements(member.value)) return elements;
      break;
    }
  }
  fmt::print(stderr, "ferry {}: unexpected answer (no '{}' array): {}\n", command, key,
             body.substr(0, 200));
  return std::nullopt;
}

void PrintJsonLines(const std::vector<std::string_view>& items) {
  for (const auto item : items) fmt::print("{}\n", item);
  std::fflush(stdout);
}

Url MustParseUrl(const std::string& text) {
  auto url = ParseUrl(text);  // checked by UrlCheck while parsing the command line
  return url ? *url : Url{};
}

}  // namespace

std::string TargetError(const BusTarget& target, bool need_subscription) {
  if (target.queue.empty() && target.topic.empty()) return "give --queue or --topic";
  if (!target.queue.empty() && !target.topic.empty()) {
    return "give --queue or --topic, not both";
  }
  if (!target.queue.empty() && !target.subscription.empty()) {
    return "--subscription goes with --topic; a queue has none";
  }
  if (need_subscription && !target.topic.empty() && target.subscription.empty()) {
    return "--topic needs --subscription: messages are read from a subscription of the topic";
  }
  return "";
}

std::string InboxPath(const BusTarget& target) {
  if (!target.queue.empty()) return "/v1/queues/" + PercentEncode(target.queue);
  std::string path = "/v1/topics/" + PercentEncode(target.topic);
  if (!target.subscription.empty()) path += "/subscriptions/" + PercentEncode(target.subscription);
  return path;
}

HttpRequest BuildPublishRequest(const PublishOptions& options, std::string body,
                                std::string (*new_id)()) {
  HttpRequest request;
  request.method = "POST";
  request.target =
      InboxPath(options.target) + (options.target.queue.empty() ? "/events" : "/messages");
  if (!options.delay.empty())
    request.target = JoinForQuery(request.target, "delay", options.delay, true);
  auto& h = request.headers;
  const bool binary = !options.type.empty() || !options.source.empty() ||
                      !options.subject.empty() || !options.key.empty();
  if (binary) {
    h.emplace_back("ce-specversion", "1.0");
    h.emplace_back("ce-id", options.id.empty() ? new_id() : options.id);
    h.emplace_back("ce-type", options.type.empty() ? kDefaultType : options.type);
    h.emplace_back("ce-source", options.source.empty() ? kDefaultSource : options.source);
    if (!options.subject.empty()) h.emplace_back("ce-subject", options.subject);
    if (!options.key.empty()) h.emplace_back("ce-partitionkey", options.key);
  } else if (!options.id.empty()) {
    h.emplace_back("idempotency-key", options.id);
  }
  if (!options.content_type.empty()) h.emplace_back("content-type", options.content_type);
  request.body = std::move(body);
  return request;
}

std::string DescribeErrorAnswer(const HttpResponse& response) {
  boost::system::error_code ec;
  const boost::json::value doc = boost::json::parse(response.body, ec);
  if (!ec && doc.is_object()) {
    const auto* error = doc.as_object().if_contains("error");
    if (error != nullptr && error->is_object()) {
      const auto* message = error->as_object().if_contains("message");
      if (message != nullptr && message->is_string()) {
        return fmt::format("HTTP {}: {}", response.status, std::string_view(message->as_string()));
      }
    }
  }
  std::string_view body(response.body);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.remove_suffix(1);
  if (body.empty()) return fmt::format("HTTP {}", response.status);
  return fmt::format("HTTP {}: {}", response.status, body.substr(0, 200));
}

BusCli::BusCli(CLI::App& app) {
  publish_ = app.add_subcommand("publish",
                                "Publish a message to a queue or topic of a running node's bus.");
  publish_->footer(
      "The data comes from --data, --file or stdin. With any of --type, --source, --subject or "
      "--key it is sent as a CloudEvent in binary mode (ce-* headers; --type defaults to " +
      std::string(kDefaultType) + ", --source to " + kDefaultSource +
      ", the id to a random UUID); else as a plain body. Prints the JSON answer.");
  AddUrlOption(publish_, url_text_, ca_file_);
  AddTargetOptions(publish_, publish_options_.target, /*with_subscription=*/false);
  data_option_ = publish_->add_option("-d,--data", data_, "The message data");
  publish_->add_option("-f,--file", file_, "Read the message data from this file")
      ->check(CLI::ExistingFile)
      ->excludes(data_option_);
  publish_->add_option("--id", publish_options_.id,
                       "Message id (ce-id; Idempotency-Key for a plain body): a repeat within the "
                       "de-dup window is not stored twice");
  publish_->add_option("--key", publish_options_.key,
                       "Ordering key (ce-partitionkey): same key, delivered in order");
  publish_->add_option("--type", publish_options_.type, "CloudEvents type, like order.created");
  publish_->add_option("--source", publish_options_.source, "CloudEvents source");
  publish_->add_option("--subject", publish_options_.subject, "CloudEvents subject");
  publish_->add_option("--content-type", publish_options_.content_type,
                       "Content-Type of the data, like application/json");
  publish_->add_option("--delay", publish_options_.delay, "Deliver no sooner than this, like 5s")
      ->check(DurationCheck());

  consume_ = app.add_subcommand(
      "consume", "Receive messages from a queue or subscription; print them as JSON lines.");
  consume_->footer(
      "Each line has the id, receipt, attempt, the CloudEvents attributes and the data. Without "
      "--ack or --nack the messages stay leased until the lease runs out, then are redelivered.");
  AddUrlOption(consume_, url_text_, ca_file_);
  AddTargetOptions(consume_, target_, /*with_subscription=*/true);
  consume_->add_option("-n,--max", max_, "At most this many messages (default 10)")
      ->check(CLI::Range(1, 1000));
  consume_->add_option("-w,--wait", wait_, "Wait up to this long (at most 60s) for a message")
      ->check(DurationCheck())
      ->capture_default_str();
  auto* ack = consume_->add_flag("--ack", ack_, "Acknowledge the messages received");
  consume_->add_flag("--nack", nack_, "Nack them: redelivered after the backoff")->excludes(ack);

  dlq_ = app.add_subcommand("dlq", "Dead letters of a queue or subscription: list, replay.");
  dlq_->require_subcommand(1);
  dlq_list_ = dlq_->add_subcommand(
      "list", "Print the dead letters as JSON lines (with attempts and reason), oldest first.");
  AddUrlOption(dlq_list_, url_text_, ca_file_);
  AddTargetOptions(dlq_list_, target_, /*with_subscription=*/true);
  dlq_list_->add_option("-n,--max", max_, "At most this many (default 100)")
      ->check(CLI::Range(1, 1000));
  dlq_replay_ = dlq_->add_subcommand(
      "replay",
      "Put dead letters back for delivery (all of them, or those given with --id); "
      "de-duplication does not block them. Prints {\"replayed\": N}.");
  AddUrlOption(dlq_replay_, url_text_, ca_file_);
  AddTargetOptions(dlq_replay_, target_, /*with_subscription=*/true);
  dlq_replay_->add_option("--id", ids_, "Replay only these message ids (repeatable)");
}

bool BusCli::Selected() const { return publish_->parsed() || consume_->parsed() || dlq_->parsed(); }

int BusCli::Run() {
  if (publish_->parsed()) return Publish();
  if (consume_->parsed()) return Consume();
  if (dlq_list_->parsed()) return ListDeadLetters();
  if (dlq_replay_->parsed()) return ReplayDeadLetters();
  return kExitUsage;
}

int BusCli::Publish() {
  std::string body;
  if (data_option_->count() > 0) {
    body = data_;
  } else if (!file_.empty()) {
    std::ifstream in(file_, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    if (!in) {
      fmt::print(stderr, "ferry publish: cannot read {}\n", file_);
      return kExitFailure;
    }
    body = std::move(text).str();
  } else {
    if (::isatty(STDIN_FILENO)) {
      fmt::print(stderr, "ferry publish: reading the data from stdin (end it with Ctrl-D)\n");
    }
    std::ostringstream text;
    text << std::cin.rdbuf();
    body = std::move(text).str();
  }
  const HttpRequest request = BuildPublishRequest(publish_options_, std::move(body), NewEventId);
  auto answer = Call("publish", MustParseUrl(url_text_), request, kRequestTimeout, ca_file_);
  if (!answer) return kExitFailure;
  fmt::print("{}", answer->body);
  if (answer->body.empty() || answer->body.back() != '\n') fmt::print("\n");
  return kExitOk;
}

int BusCli::Consume() {
  const Url url = MustParseUrl(url_text_);
  const std::string inbox = InboxPath(target_);
  HttpRequest request;
  request.target =
      JoinForQuery(inbox + "/messages", "max", std::to_string(max_ > 0 ? max_ : 10), true);
  request.target = JoinForQuery(request.target, "wait", wait_, false);
  const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(*ParseDuration(wait_));
  auto answer = Call("consume", url, request, wait + kRequestTimeout, ca_file_);
  if (!answer) return kExitFailure;
  if (answer->status == 204) {
    fmt::print(stderr, "ferry consume: no message within {}\n", wait_);
    return kExitOk;
  }
  auto messages = ArrayField("consume", answer->body, "messages");
  if (!messages) return kExitFailure;
  PrintJsonLines(*messages);
  if (!ack_ && !nack_) return kExitOk;

  std::vector<std::string> receipts;
  for (const auto text : *messages) {
    boost::system::error_code ec;
    const boost::json::value m = boost::json::parse(text, ec);
    const auto* receipt = !ec && m.is_object() ? m.as_object().if_contains("receipt") : nullptr;
    if (receipt != nullptr && receipt->is_string()) receipts.emplace_back(receipt->as_string());
  }
  if (receipts.empty()) return kExitOk;
  boost::json::object body;
  body["receipts"] = ToJsonArray(receipts);
  const char* verb = ack_ ? "ack" : "nack";
  if (!Call("consume", url, JsonPost(inbox + "/" + verb, body), kRequestTimeout, ca_file_)) {
    return kExitFailure;
  }
  fmt::print(stderr, "ferry consume: {}ed {} message(s)\n", verb, receipts.size());
  return kExitOk;
}

int BusCli::ListDeadLetters() {
  HttpRequest request;
  request.target = JoinForQuery(InboxPath(target_) + "/dead-letters", "max",
                                std::to_string(max_ > 0 ? max_ : 100), true);
  auto answer = Call("dlq list", MustParseUrl(url_text_), request, kRequestTimeout, ca_file_);
  if (!answer) return kExitFailure;
  auto dead = ArrayField("dlq list", answer->body, "dead_letters");
  if (!dead) return kExitFailure;
  if (dead->empty()) fmt::print(stderr, "ferry dlq list: no dead letters\n");
  PrintJsonLines(*dead);
  return kExitOk;
}

int BusCli::ReplayDeadLetters() {
  boost::json::object body;
  if (!ids_.empty()) body["ids"] = ToJsonArray(ids_);
  auto answer =
      Call("dlq replay", MustParseUrl(url_text_),
           JsonPost(InboxPath(target_) + "/dead-letters/replay", body), kRequestTimeout, ca_file_);
  if (!answer) return kExitFailure;
  fmt::print("{}", answer->body);
  if (answer->body.empty() || answer->body.back() != '\n') fmt::print("\n");
  return kExitOk;
}

}  // namespace ferry::app
