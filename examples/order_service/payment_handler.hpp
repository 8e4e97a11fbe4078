// The payment role of order_service: takes the payment commands of the bus queue `payments`
// (the data of each is the order JSON) and charges them. Two ways to get them:
//  - push: the bus POSTs each command here (CloudEvents binary mode); a 2xx acks it, a 500
//    makes the bus deliver it again after its backoff (HandlePaymentRequest);
//  - pull: this process long-polls the bus API and acks or nacks each command itself
//    (RunPaymentPuller).
// Either way, after max_deliveries failures the bus moves the command to the dead letters. To
// show that in the demo, the handler can be started with a limit: amounts above it fail, as a
// release with a bug would, until a fixed one (no limit) runs and the dead letters are replayed.
// Thread-safe: the settings are immutable.
#pragma once

#include <atomic>
#include <optional>
#include <string>

#include "app/http_client.hpp"
#include "common/json_server.hpp"

namespace ferry::examples {

struct PaymentSettings {
  std::string name;                  // instance name, in log lines
  std::optional<double> max_amount;  // amounts above it fail
};

// Push: answers one delivery: 200 charged, 500 failed, 422 not an order.
JsonAnswer HandlePaymentRequest(const Request& request, const std::string& body,
                                const PaymentSettings& settings);

// Pull: receives from the bus API's queue `payments`, acks what it charged and nacks the rest,
// until `stop` is set; then finishes the long poll in progress (settling what it brought, so no
// message is left leased to a consumer that is gone) and returns 0. An unreachable bus is
// reported once and retried every second.
int RunPaymentPuller(const PaymentSettings& settings, const app::Url& bus,
                     const std::atomic<bool>& stop);

}  // namespace ferry::examples
