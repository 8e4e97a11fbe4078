// Internal to src/bus/api: the BusService implementation, split over bus_service.cpp
// (lifecycle, timers, HTTP connections), bus_api.cpp (the routes) and push_delivery.cpp.
#pragma once

#include <atomic>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bus/api/bus_access.hpp"
#include "bus/api/bus_service.hpp"
#include "bus/api/cloudevents.hpp"
#include "bus/api/push_endpoints.hpp"
#include "bus/api/topic_hub.hpp"
#include "bus/broker.hpp"
#include "http/message.hpp"
#include "observability/metric_family.hpp"
#include "resilience/circuit_breaker.hpp"
#include "runtime/asio.hpp"
#include "runtime/task_group.hpp"
#include "server/server.hpp"
#include "upstream/resolver.hpp"

namespace ferry::resilience {
class ServiceRegistry;
}  // namespace ferry::resilience

namespace ferry::bus {

struct ApiResponse {
  int status = 200;
  std::string body;              // JSON
  std::string allow;             // a 405's Allow header (the methods of the path); empty otherwise
  std::string www_authenticate;  // a 401's WWW-Authenticate header; empty otherwise
  std::string retry_after;       // a 503's Retry-After header (seconds); empty otherwise
};

// {"error": {"code", "status", "message"}}: every error the bus API answers (bus_api.cpp).
ApiResponse ErrorReply(int status, std::string_view code, std::string_view message);

// The publish series of one destination, looked up once (Family::Get takes the registry's lock).
struct PublishSeries {
  observability::Counter* stored;
  observability::Counter* duplicate;
  observability::Counter* rejected;
  observability::Histogram* latency;
};

// The metric series of the bus API, written by the bus thread in its own slot (a backend
// registers its own: the embedded log's fsync and retention series).
struct BusMetrics {
  observability::CounterFamily* published;          // {destination, result}
  observability::HistogramFamily* publish_latency;  // {destination}: request to durable ack
  observability::CounterFamily* deliveries;         // {inbox, mode}
  observability::HistogramFamily* end_to_end;       // {inbox}: publish to first delivery
  observability::GaugeFamily* depth;                // {inbox}
  observability::GaugeFamily* in_flight;            // {inbox}
  observability::GaugeFamily* dead_letters;         // {inbox}
  observability::GaugeFamily* redeliveries;         // {inbox} (total since start)
  observability::CounterFamily* push_results;       // {inbox, result}
};

class BusServiceImpl final : public BusService, public server::Handler {
 public:
  BusServiceImpl(const config::Config& config, observability::MetricsRegistry& metrics,
                 std::size_t slot);
  ~BusServiceImpl() override;
  Result<void> Start() override;
  void SetHealthRegistry(upstream::HealthRegistry* registry) override { health_ = registry; }
  void SetServiceRegistry(resilience::ServiceRegistry* registry) override { services_ = registry; }
  void SetClientTls(const tls::ClientTlsRegistry* registry) override { client_tls_ = registry; }
  void SetListenerTls(std::shared_ptr<const tls::ServerContext> context) override;
  void Stop() override;
  Result<void> Reload(std::shared_ptr<const config::Config> next) override;
  std::string listen_address() const override { return listen_address_; }
  proxy::TopicFeeds* topic_feeds() override { return hub_.get(); }
  bool broker_available() const override {
    const Broker* broker = available_probe_.load();
    return broker == nullptr || broker->Available();
  }

  // --- bus_api.cpp
  // Parameters are references to the caller's named values: see the coroutine rules in README.
  // `client_alive` tells whether the requesting client is still connected: a long-poll that
  // wakes for a message first checks it, so no message is leased to a client that has gone.
  Task<ApiResponse> Handle(const http::RequestHead& request, std::string_view body,
                           const std::function<bool()>& client_alive);
  // For a request with Expect: 100-continue: its final answer if the body cannot change it (an
  // unknown path, a bad name or method, a publish to an unknown queue or topic); nullopt: 100.
  std::optional<ApiResponse> AnswerBeforeBody(const http::RequestHead& request);

  // --- For tests (bus_api_test.cpp), instead of Start/Stop: no bus thread and no listener.
  // OpenInline opens the broker and declares the config on the calling thread, which then runs
  // io() itself (as the bus thread) and sends requests to Handle, or through ServeInline over a
  // stream (an in-memory one). CloseInline ends what runs and closes the broker.
  Result<void> OpenInline();
  void ServeInline(std::unique_ptr<runtime::Stream> stream);
  void CloseInline();
  asio::io_context& io() { return io_; }

 private:
  struct PushTarget;

  // bus_service.cpp
  Result<void> OpenBroker();
  // Declares config_'s queues, topics and subscriptions (creating new ones, updating the
  // options of the others) and sets every push; at start and at each reload.
  Result<void> Declare();
  // Logs what a reload to `next` leaves as it runs: restart-only settings, and queues and
  // topics that left the config.
  void WarnUnappliedReload(const config::Bus& next) const;
  // One API request, from src/server: the body read whole, Handle's answer written.
  Task<void> Serve(server::Request& request, server::Response& response) override;
  // A failed client TLS handshake on the bus API's listener: ferry_tls_handshake_failures_total.
  void HandshakeFailed() override;
  void ArmTick();
  void ArmMaintenance();
  void RefreshGauges();
  void WatchInbox(const Inbox& inbox);
  void NotifyInbox(const std::string& inbox);
  // How many times `inbox` was notified so far: read it before a Receive, give it to WaitReady.
  std::uint64_t Notifications(const std::string& inbox) const;
  // Waits until `inbox` may have messages or `deadline`; false once stopping. Returns at once
  // when the inbox was notified since `seen` (Notifications() before the Receive that came back
  // empty): Receive answers a turn after it is called, and a publish may land in between.
  Task<bool> WaitReady(const std::string& inbox, std::uint64_t seen,
                       std::chrono::steady_clock::time_point deadline);

  // bus_api.cpp
  // Every route of Handle but publishing.
  Task<ApiResponse> Route(const http::RequestHead& request, std::string_view body,
                          const std::function<bool()>& client_alive);
  Task<ApiResponse> Publish(Destination to, const http::RequestHead& request,
                            std::string_view body);
  Task<ApiResponse> Receive(const Inbox& inbox, const http::RequestHead& request,
                            const std::function<bool()>& client_alive);
  Task<ApiResponse> Settle(const Inbox& inbox, const std::string& verb, std::string_view body);
  Task<ApiResponse> ReplayDead(const Inbox& inbox, std::string_view body);
  ApiResponse ListDead(const Inbox& inbox, const http::RequestHead& request);
  ApiResponse QueueStatsJson(const std::string& queue);
  ApiResponse TopicStatsJson(const std::string& topic);
  ApiResponse SubscriptionStatsJson(const std::string& topic, const std::string& name);
  Task<ApiResponse> PutSubscription(const std::string& topic, const std::string& name,
                                    std::string_view body);
  Task<ApiResponse> DeleteSubscription(const std::string& topic, const std::string& name);
  ApiResponse ReplaySubscription(const std::string& topic, const std::string& name,
                                 std::string_view body);

  // push_delivery.cpp
  // Starts pushing `inbox` to push.service (which must be in config_->services). `previous`,
  // the push this one replaces, keeps its deliveries in flight; the new one starts once they
  // are done, so push.concurrency holds across the change.
  void StartPush(const Inbox& inbox, const config::BusPush& push,
                 std::shared_ptr<PushTarget> previous = nullptr);
  // Makes a queue or subscription push as `push` says (none: pull), as the config declared it
  // or a PUT set it: an unchanged push (same settings, same service settings) keeps running, a
  // changed one replaces the running one. A service that is not in the config (a push stored
  // before the config lost it) is logged and not started: the messages wait rather than fail
  // into the dead letters.
  void SetPush(const Inbox& inbox, const std::optional<PushOptions>& push);
  // Stops the push of the inbox, if any: its loop ends, its deliveries in flight finish. Returns
  // the stopped push (null if none ran).
  std::shared_ptr<PushTarget> StopPush(const std::string& inbox);
  Task<void> PushLoop(std::shared_ptr<PushTarget> target);
  Task<void> PushOne(std::shared_ptr<PushTarget> target, Delivery delivery,
                     resilience::Admission admission);
  // Closes idle push connections past the service's pool_idle_timeout.
  void SweepPushConnections();
  // Starts a re-resolution, on resolve_pool_, of each push whose service names hosts by DNS and
  // whose resolve_interval has passed; the answer comes back to the bus thread.
  void ResolvePushEndpoints();

  // The config the node runs now (a reload replaces it, on the bus thread): queues, topics,
  // config subscriptions and the services pushes go to.
  std::shared_ptr<const config::Config> config_;
  // Who may use the API, as config_ says (bus_access.hpp); rebuilt with it at each reload.
  std::unique_ptr<const BusAccess> access_;
  // The config the bus started with, for what only a restart changes (listen, data_dir,
  // durability and the other log settings).
  const std::shared_ptr<const config::Config> started_with_;
  const config::Bus& bus_;  // started_with_'s
  observability::MetricsRegistry& registry_;
  std::size_t slot_;
  observability::Counter* handshake_failures_;
  // The node's per-service resilience state (breakers, concurrency limits), shared with the
  // proxy; null in tests of the bus alone.
  resilience::ServiceRegistry* services_ = nullptr;
  const tls::ClientTlsRegistry* client_tls_ = nullptr;
  // The API listener's TLS context until Start (then the server holds it).
  std::shared_ptr<const tls::ServerContext> listener_tls_;
  BusMetrics metrics_{};
  std::map<std::pair<Destination::Kind, std::string>, PublishSeries, std::less<>> publish_series_;
  PublishSeries& SeriesFor(const Destination& to);
  // The source and type an event published to `to` (or delivered from `inbox`) gets when it
  // has none: the config's default_source/default_type, else the built-in ones.
  EventDefaults DefaultsFor(const Destination& to) const;
  EventDefaults DefaultsFor(const Inbox& inbox) const;
  asio::io_context io_{1};
  std::unique_ptr<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::thread thread_;
  std::unique_ptr<Broker> broker_;
  // Topic routes' feeds (topic_hub.hpp): reads broker_ on the bus thread.
  std::unique_ptr<TopicHub> hub_;
  // broker_ for broker_available() on other threads: set once it is open, cleared before it
  // is destroyed.
  std::atomic<const Broker*> available_probe_{nullptr};
  // The API's HTTP server (its connections are its tasks; their frames hold its state).
  std::unique_ptr<server::Server> server_;
  // Push loops and deliveries (push_delivery.cpp); cancelled when the bus stops.
  runtime::TaskGroup push_tasks_{io_.get_executor()};
  std::string listen_address_;
  asio::steady_timer tick_timer_;
  // When the armed tick fires (nullopt: not armed). ArmTick re-arms only for an earlier one, so
  // a publish does not cancel and re-post the timer each time.
  std::optional<std::chrono::steady_clock::time_point> tick_at_;
  asio::steady_timer maintenance_timer_;
  asio::steady_timer stop_timer_;
  // The long-polls (and push loops) waiting on an inbox, and its notifications so far.
  struct InboxWaiters {
    std::uint64_t notified = 0;
    std::list<asio::steady_timer*> timers;
  };
  std::map<std::string, InboxWaiters> waiters_;  // by Inbox::ToString()
  std::vector<std::shared_ptr<PushTarget>> push_targets_;
  // getaddrinfo blocks: push re-resolution runs here, off the bus thread (joined in Stop).
  // A name that stops resolving keeps its last addresses (see upstream::LastGoodResolver).
  upstream::HealthRegistry* health_ = nullptr;
  std::shared_ptr<upstream::Resolver> resolver_ =
      std::make_shared<upstream::LastGoodResolver>(std::make_shared<upstream::SystemResolver>());
  asio::thread_pool resolve_pool_{1};
  std::uint64_t maintenance_rounds_ = 0;  // retention runs every 5th round
  bool stopping_ = false;
};

}  // namespace ferry::bus
