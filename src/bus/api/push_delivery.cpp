// Push delivery: the bus POSTs each message to an HTTP endpoint of the subscriber's service
// (CloudEvents binary mode, the data untouched). A 2xx acks it; any other status, a connection
// failure or the timeout nacks it, so redelivery with backoff is the only retry — no HTTP-level
// retries or hedges stacked on top (a known pitfall of sidecars that retry underneath a broker).
#include <spdlog/spdlog.h>

#include "bus/api/bus_service_impl.hpp"
#include "bus/api/cloudevents.hpp"
#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "http/serializer.hpp"
#include "runtime/deadline.hpp"
#include "upstream/resolver.hpp"

namespace ferry::bus {

struct BusServiceImpl::PushTarget {
  Inbox inbox;
  config::BusPush push;
  std::vector<tcp::endpoint> endpoints;
  std::size_t next = 0;                            // round robin over endpoints
  std::uint32_t in_flight = 0;                     // deliveries being pushed
  std::unique_ptr<asio::steady_timer> slot_freed;  // cancelled when a push finishes
};

void BusServiceImpl::StartPush(const Inbox& inbox, const config::BusPush& push) {
  auto target = std::make_shared<PushTarget>();
  target->inbox = inbox;
  target->push = push;
  upstream::SystemResolver resolver;
  const auto service = config_->services.find(push.service);
  if (service != config_->services.end()) {
    for (const config::Address& a : service->second.endpoints) {
      auto ips = resolver.Resolve(a.host);
      if (!ips) {
        spdlog::warn("bus push {}: cannot resolve {}: {}", inbox.ToString(), a.host,
                     ips.error().message());
        continue;
      }
      for (const std::string& ip : *ips) {
        target->endpoints.emplace_back(asio::ip::make_address(ip), a.port);
      }
    }
  }
  target->slot_freed = std::make_unique<asio::steady_timer>(io_);
  push_targets_.push_back(target);
  asio::co_spawn(io_, PushLoop(target), asio::detached);
}

Task<void> BusServiceImpl::PushLoop(std::shared_ptr<PushTarget> target) {
  const std::string key = target->inbox.ToString();
  while (!stopping_) {
    if (target->in_flight >= target->push.concurrency) {
      target->slot_freed->expires_after(std::chrono::seconds(1));
      co_await target->slot_freed->async_wait(kNoThrow);
      continue;
    }
    auto got = broker_->Receive(target->inbox, target->push.concurrency - target->in_flight);
    if (!got) {
      spdlog::warn("bus push {}: {}", key, got.error().message());
      co_await WaitReady(key, std::chrono::steady_clock::now() + std::chrono::seconds(1));
      continue;
    }
    ArmTick();
    if (got->empty()) {
      co_await WaitReady(key, std::chrono::steady_clock::now() + std::chrono::seconds(1));
      continue;
    }
    const auto now = std::chrono::system_clock::now();
    for (Delivery& d : *got) {
      metrics_.deliveries->Get(key, "push").Add(slot_);
      if (d.attempt == 1) {
        metrics_.end_to_end->Get(key).Observe(
            slot_, std::chrono::duration<double>(now - d.message.published_at).count());
      }
      ++target->in_flight;
      asio::co_spawn(io_, PushOne(target, std::move(d)), asio::detached);
    }
  }
}

Task<void> BusServiceImpl::PushOne(std::shared_ptr<PushTarget> target, Delivery delivery) {
  const std::string key = target->inbox.ToString();
  bool delivered = false;
  bool timed_out = false;
  if (!target->endpoints.empty()) {
    const tcp::endpoint endpoint = target->endpoints[target->next++ % target->endpoints.size()];
    tcp::socket socket(io_);
    runtime::Deadline<tcp::socket> deadline(io_, socket);
    deadline.Arm(target->push.timeout);
    auto [cec] = co_await socket.async_connect(endpoint, kNoThrow);
    if (!cec) {
      http::Headers headers;
      headers.Add("host", endpoint.address().to_string() + ":" + std::to_string(endpoint.port()));
      AddBinaryModeHeaders(delivery, headers);
      headers.Add("content-length", std::to_string(delivery.message.data.size()));
      headers.Add("x-ferry-delivery-attempt", std::to_string(delivery.attempt));
      headers.Add("connection", "close");
      std::string head;
      http::AppendRequestHead(head, "POST", target->push.path, headers);
      std::array<asio::const_buffer, 2> out = {asio::buffer(head),
                                               asio::buffer(delivery.message.data)};
      auto [wec, written] = co_await asio::async_write(socket, out, kNoThrow);
      if (!wec) {
        std::string in;
        char buf[4096];
        http::HeadScanner scanner({64 * 1024, 256});
        // Scan is incremental: keep the state it ended with rather than scanning again.
        http::HeadScanner::State state;
        while ((state = scanner.Scan(in)) == http::HeadScanner::State::kIncomplete) {
          auto [rec, n] = co_await socket.async_read_some(asio::buffer(buf), kNoThrow);
          if (rec) break;
          in.append(buf, n);
        }
        if (state == http::HeadScanner::State::kComplete) {
          http::Parser parser(http::Parser::Kind::kResponse);
          auto parsed = parser.Feed(std::string_view(in).substr(0, scanner.head_size()));
          const int status = parsed && parser.head_done() ? parser.response().status : 0;
          delivered = status >= 200 && status < 300;
        }
      }
    }
    timed_out = deadline.expired();
  }
  metrics_.push_results->Get(key, delivered   ? "acked"
                                  : timed_out ? "timeout"
                                              : "failed")
      .Add(slot_);
  std::vector<std::string> receipts{delivery.receipt};
  if (delivered) {
    broker_->Ack(target->inbox, std::move(receipts), [](auto) {});
  } else {
    broker_->Nack(target->inbox, std::move(receipts), std::nullopt, [](auto) {});
  }
  ArmTick();
  --target->in_flight;
  target->slot_freed->cancel();
}

}  // namespace ferry::bus
