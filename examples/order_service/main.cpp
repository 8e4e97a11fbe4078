// order_service: the ordering service of Ferry's demo and (with --role payment) its payment
// handler, which takes payment commands pushed by the bus or pulls them (--pull). One thread per
// connection on blocking POSIX sockets, like echo_service; see README.md.
#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <charconv>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "app/http_client.hpp"
#include "common/server.hpp"
#include "order_handler.hpp"
#include "payment_handler.hpp"

namespace {

constexpr std::string_view kUsage =
    "usage: order_service [--role orders|payment] [--listen HOST:PORT] [--name NAME]\n"
    "                     [--bus URL] [--pull] [--max-amount N]\n"
    "  --role orders       (default) POST /orders {\"order_id\", \"amount\"}: queue a payment\n"
    "                      command on `payments` and publish order.created to `orders`\n"
    "  --role payment      take the payment commands the bus pushes (any POST path), or\n"
    "                      with --pull, receive them from the queue `payments` of --bus\n"
    "  --listen HOST:PORT  address to listen on (default 127.0.0.1:7002; port 0 picks one)\n"
    "  --name NAME         instance name in log lines (default: the role)\n"
    "  --bus URL           the bus API (default http://127.0.0.1:8081)\n"
    "  --pull              payment: pull from the bus instead of listening for pushes\n"
    "  --max-amount N      payment: fail (500) amounts above N, like a buggy release\n";

// The payment role pulling from the bus: SIGTERM or SIGINT stops it after the long poll in
// progress, so the messages that poll brings are settled, not left leased to a dead consumer.
int Pull(const ferry::examples::PaymentSettings& settings, const ferry::app::Url& bus) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  static std::atomic<bool> stop{false};
  std::thread([stop_signals, name = settings.name] {
    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    fmt::print("order_service {} stopping on signal {} after the current poll\n", name,
               signal_number);
    std::fflush(stdout);
    stop = true;
  }).detach();
  fmt::print("order_service {} pulling payment commands from {}\n", settings.name, bus.ToString());
  std::fflush(stdout);
  return ferry::examples::RunPaymentPuller(settings, bus, stop);
}

int Usage(std::string_view problem) {
  fmt::print(stderr, "order_service: {}\n{}", problem, kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string role = "orders";
  std::string listen_address = "127.0.0.1:7002";
  std::string name;
  std::string bus = "http://127.0.0.1:8081";
  std::string max_amount;
  bool pull = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (arg == "--pull") {
      pull = true;
      continue;
    }
    std::string* value = arg == "--role"         ? &role
                         : arg == "--listen"     ? &listen_address
                         : arg == "--name"       ? &name
                         : arg == "--bus"        ? &bus
                         : arg == "--max-amount" ? &max_amount
                                                 : nullptr;
    if (value == nullptr || i + 1 >= argc) {
      return Usage(fmt::format("unexpected argument '{}'", arg));
    }
    *value = argv[++i];
  }
  if (name.empty()) name = role;
  auto url = ferry::app::ParseUrl(bus);
  if (!url) return Usage(url.error().message());

  if (role == "orders") {
    const auto settings = std::make_shared<const ferry::examples::OrderSettings>(
        ferry::examples::OrderSettings{name, *url});
    return ferry::examples::RunServer("order_service", name, listen_address, [settings](int fd) {
      ferry::examples::ServeJsonRequests(
          fd, [&settings](const ferry::examples::Request& request, const std::string& body) {
            return ferry::examples::HandleOrderRequest(request, body, *settings);
          });
    });
  }
  if (role == "payment") {
    ferry::examples::PaymentSettings payment{name, std::nullopt};
    if (!max_amount.empty()) {
      double limit = 0;
      const auto [end, ec] =
          std::from_chars(max_amount.data(), max_amount.data() + max_amount.size(), limit);
      if (ec != std::errc() || end != max_amount.data() + max_amount.size()) {
        return Usage(fmt::format("--max-amount '{}' is not a number", max_amount));
      }
      payment.max_amount = limit;
    }
    if (pull) return Pull(payment, *url);
    const auto settings = std::make_shared<const ferry::examples::PaymentSettings>(payment);
    return ferry::examples::RunServer("order_service", name, listen_address, [settings](int fd) {
      ferry::examples::ServeJsonRequests(
          fd, [&settings](const ferry::examples::Request& request, const std::string& body) {
            return ferry::examples::HandlePaymentRequest(request, body, *settings);
          });
    });
  }
  return Usage(fmt::format("--role must be orders or payment, not '{}'", role));
}
