// The ordering role of order_service: `POST /orders` with {"order_id", "amount"} puts a payment
// command on the bus queue `payments` and publishes an `order.created` event to the topic
// `orders`, both as CloudEvents whose id is the order id, so a client that retries an order
// (after a timeout, say) is de-duplicated by the bus instead of charged twice.
// Thread-safe: the settings are immutable and shared; each call makes its own bus requests.
#pragma once

#include <string>

#include "app/http_client.hpp"
#include "common/json_server.hpp"

namespace ferry::examples {

inline constexpr char kPaymentsQueue[] = "payments";
inline constexpr char kOrdersTopic[] = "orders";

struct OrderSettings {
  std::string name;  // instance name, in log lines
  app::Url bus;      // the bus API of a Ferry node
};

struct Order {
  std::string id;     // "order_id": a non-empty string
  double amount = 0;  // "amount": a JSON number
};

// The order in a JSON body, or an error message that says what is missing.
bool ParseOrder(const std::string& body, Order& order, std::string& error);

// Answers one request of the ordering role: 201 when both messages are on the bus, 400 for a bad
// order, 503 when the bus did not take them (the client may retry the same order).
JsonAnswer HandleOrderRequest(const Request& request, const std::string& body,
                              const OrderSettings& settings);

}  // namespace ferry::examples
