#include "payment_handler.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "order_handler.hpp"

namespace ferry::examples {
namespace {

constexpr std::chrono::seconds kPullWait{5};    // one long poll
constexpr std::chrono::seconds kBusTimeout{5};  // on top of the long poll

enum class Outcome {
  kCharged,  // acked
  kFailed,   // this release cannot charge it: nacked, redelivered, dead-lettered at last
  kInvalid,  // not an order; retrying cannot help, but the bus decides: also a failure
};

// Charges the order in `data`, printing one line about it. `attempt` is the delivery number.
Outcome Charge(const std::string& data, std::string_view attempt, const PaymentSettings& settings,
               Order& order) {
  const std::string delivery = attempt.empty() ? "" : fmt::format(" (delivery {})", attempt);
  std::string error;
  Outcome outcome = Outcome::kCharged;
  if (!ParseOrder(data, order, error)) {
    fmt::print("payment_handler {}: bad command{}: {}\n", settings.name, delivery, error);
    outcome = Outcome::kInvalid;
  } else if (settings.max_amount && order.amount > *settings.max_amount) {
    fmt::print(
        "payment_handler {}: order {} ({:.2f}){}: FAILED, this release crashes on amounts "
        "over {:.2f}\n",
        settings.name, order.id, order.amount, delivery, *settings.max_amount);
    outcome = Outcome::kFailed;
  } else {
    fmt::print("payment_handler {}: order {} ({:.2f}){}: charged\n", settings.name, order.id,
               order.amount, delivery);
  }
  std::fflush(stdout);
  return outcome;
}

// Acks or nacks `receipts` of the queue; a failure is printed (the lease then runs out and the
// bus redelivers, which is the safe side).
void Settle(const app::Url& bus, std::string_view verb, const std::vector<std::string>& receipts,
            const PaymentSettings& settings) {
  if (receipts.empty()) return;
  boost::json::object body;
  boost::json::array list;
  for (const std::string& r : receipts) list.emplace_back(r);
  body["receipts"] = std::move(list);
  app::HttpRequest request;
  request.method = "POST";
  request.target = fmt::format("/v1/queues/{}/{}", kPaymentsQueue, verb);
  request.headers.emplace_back("content-type", "application/json");
  request.body = boost::json::serialize(body);
  auto response = app::Send(bus, request, kBusTimeout);
  if (!response || response->status != 200) {
    fmt::print(stderr, "payment_handler {}: {} failed: {}\n", settings.name, verb,
               response ? response->body : response.error().message());
  }
}

}  // namespace

JsonAnswer HandlePaymentRequest(const Request& request, const std::string& body,
                                const PaymentSettings& settings) {
  if (request.method != "POST") return {200, "{\"status\":\"ok\"}\n"};  // health checks
  const std::string* attempt = request.Find("x-ferry-delivery-attempt");
  Order order;
  const Outcome outcome = Charge(body, attempt ? *attempt : "", settings, order);
  if (outcome == Outcome::kInvalid) return {422, "{\"error\":\"not a payment command\"}\n"};
  boost::json::object o;
  o["order_id"] = order.id;
  o["result"] = outcome == Outcome::kCharged ? "charged" : "failed";
  return {outcome == Outcome::kCharged ? 200 : 500, boost::json::serialize(o) + "\n"};
}

int RunPaymentPuller(const PaymentSettings& settings, const app::Url& bus,
                     const std::atomic<bool>& stop) {
  app::HttpRequest receive;
  receive.target =
      fmt::format("/v1/queues/{}/messages?max=10&wait={}s", kPaymentsQueue, kPullWait.count());
  bool reported_down = false;
  while (!stop) {
    auto response = app::Send(bus, receive, kPullWait + kBusTimeout);
    if (!response || (response->status != 200 && response->status != 204)) {
      if (!reported_down) {
        fmt::print(stderr, "payment_handler {}: cannot receive from {}: {}\n", settings.name,
                   bus.ToString(), response ? response->body : response.error().message());
        reported_down = true;
      }
      if (!stop) std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    reported_down = false;
    if (response->status == 204) continue;
    boost::system::error_code ec;
    const boost::json::value doc = boost::json::parse(response->body, ec);
    const auto* messages =
        !ec && doc.is_object() ? doc.as_object().if_contains("messages") : nullptr;
    if (messages == nullptr || !messages->is_array()) continue;
    std::vector<std::string> acks;
    std::vector<std::string> nacks;
    for (const auto& m : messages->as_array()) {
      if (!m.is_object()) continue;
      const auto& message = m.as_object();
      const auto* receipt = message.if_contains("receipt");
      const auto* data = message.if_contains("data");
      const auto* attempt = message.if_contains("attempt");
      if (receipt == nullptr || !receipt->is_string()) continue;
      // JSON data arrives parsed; anything else as a string.
      const std::string text = data == nullptr     ? ""
                               : data->is_string() ? std::string(data->as_string())
                                                   : boost::json::serialize(*data);
      Order order;
      const std::string attempt_text =
          attempt != nullptr && attempt->is_int64() ? std::to_string(attempt->as_int64()) : "";
      const Outcome outcome = Charge(text, attempt_text, settings, order);
      (outcome == Outcome::kCharged ? acks : nacks).emplace_back(receipt->as_string());
    }
    Settle(bus, "ack", acks, settings);
    Settle(bus, "nack", nacks, settings);
  }
  return 0;
}

}  // namespace ferry::examples
