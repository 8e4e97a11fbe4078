#include "order_handler.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <chrono>
#include <cstdio>

namespace ferry::examples {
namespace {

constexpr std::chrono::seconds kBusTimeout{5};
constexpr char kSource[] = "/order-service";

JsonAnswer Error(int status, std::string_view message) {
  boost::json::object o;
  o["error"] = message;
  return {status, boost::json::serialize(o) + "\n"};
}

// {"order_id": ..., "amount": ...}. Boost.JSON would write 25 as 2.5E1; fmt writes the
// shortest form that reads back the same (25, 40.5).
std::string OrderJson(const Order& order) {
  return fmt::format("{{\"order_id\":{},\"amount\":{}}}",
                     boost::json::serialize(boost::json::string(order.id)), order.amount);
}

// Publishes `order` as a CloudEvent in binary mode to `path` of the bus API; the bus's answer
// ({"id", "sequence", "duplicate"}), or false with `error` set.
bool Publish(const app::Url& bus, std::string path, std::string_view type, const Order& order,
             boost::json::object& answer, std::string& error) {
  app::HttpRequest request;
  request.method = "POST";
  request.target = std::move(path);
  request.headers = {{"ce-specversion", "1.0"},      {"ce-id", order.id},
                     {"ce-type", std::string(type)}, {"ce-source", kSource},
                     {"ce-subject", order.id},       {"content-type", "application/json"}};
  request.body = OrderJson(order);
  auto response = app::Send(bus, request, kBusTimeout);
  if (!response) {
    error = response.error().message();
    return false;
  }
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(response->body, ec);
  if (response->status != 201 || ec || !v.is_object()) {
    error = fmt::format("the bus answered {}: {}", response->status, response->body);
    while (!error.empty() && error.back() == '\n') error.pop_back();
    return false;
  }
  answer = std::move(v.as_object());
  return true;
}

}  // namespace

bool ParseOrder(const std::string& body, Order& order, std::string& error) {
  boost::system::error_code ec;
  const boost::json::value v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) {
    error = "the body must be a JSON object like {\"order_id\": \"o-1\", \"amount\": 25}";
    return false;
  }
  const auto* id = v.as_object().if_contains("order_id");
  if (id == nullptr || !id->is_string() || id->as_string().empty()) {
    error = "\"order_id\" must be a non-empty string";
    return false;
  }
  const auto* amount = v.as_object().if_contains("amount");
  if (amount == nullptr || !amount->is_number()) {
    error = "\"amount\" must be a number";
    return false;
  }
  order.id = std::string(id->as_string());
  order.amount = amount->to_number<double>();
  return true;
}

JsonAnswer HandleOrderRequest(const Request& request, const std::string& body,
                              const OrderSettings& settings) {
  const std::string_view target(request.target);
  const std::string_view path = target.substr(0, target.find('?'));
  if (path == "/health") return {200, "{\"status\":\"ok\"}\n"};
  if (path != "/orders" && path != "/orders/")
    return Error(404, "no such endpoint; try POST /orders");
  if (request.method != "POST") return Error(405, "use POST to place an order");

  Order order;
  std::string error;
  if (!ParseOrder(body, order, error)) return Error(400, error);

  // The command first: an order whose payment is not queued must not be announced. If the event
  // fails after it, the client's retry re-sends both and the bus drops the duplicate command.
  boost::json::object command;
  if (!Publish(settings.bus, fmt::format("/v1/queues/{}/messages", kPaymentsQueue),
               "payment.requested", order, command, error)) {
    fmt::print("order_service {}: order {} NOT accepted: {}\n", settings.name, order.id, error);
    std::fflush(stdout);
    return Error(503, "the payment command could not be queued: " + error);
  }
  boost::json::object event;
  if (!Publish(settings.bus, fmt::format("/v1/topics/{}/events", kOrdersTopic), "order.created",
               order, event, error)) {
    fmt::print("order_service {}: order {} NOT accepted: {}\n", settings.name, order.id, error);
    std::fflush(stdout);
    return Error(503, "the order.created event could not be published: " + error);
  }
  fmt::print(
      "order_service {}: order {} ({:.2f}) accepted: payment command queued{}, "
      "order.created published\n",
      settings.name, order.id, order.amount,
      command["duplicate"].as_bool() ? " (a duplicate: already queued)" : "");
  std::fflush(stdout);

  command["queue"] = kPaymentsQueue;
  event["topic"] = kOrdersTopic;
  event["type"] = "order.created";
  const std::string order_json = OrderJson(order);
  std::string answer = order_json.substr(0, order_json.size() - 1);  // without the closing brace
  answer += fmt::format(",\"status\":\"accepted\",\"payment_command\":{},\"event\":{}}}\n",
                        boost::json::serialize(command), boost::json::serialize(event));
  return {201, std::move(answer)};
}

}  // namespace ferry::examples
