#include "proxy/filters/forwarding.hpp"

#include <gtest/gtest.h>

#include "config/address.hpp"
#include "proxy/filter_wait.hpp"

namespace ferry::proxy::filters {
namespace {

// Runs the filter on a request with the given x-ferry-* fields from `client_ip` (whose verified
// SPIFFE ID is `peer`, if any).
http::RequestHead Forward(const Forwarding& filter, std::string_view client_ip,
                          std::string_view peer = {}) {
  http::RequestHead head;
  head.method = "GET";
  head.target = "/";
  head.headers.Add("x-ferry-deadline-ms", "250");
  head.headers.Add("x-ferry-caller", "spoofed");
  config::Route route;
  LocalReply reply;
  std::vector<std::unique_ptr<ResponseObserver>> observers;
  CallerIdentity caller;
  caller.peer = peer;
  FilterContext context{head,  route,         client_ip, "rid",     {},
                        reply, SystemClock(), 0,         observers, caller};
  EXPECT_EQ(filter.OnRequest(context), Verdict::kContinue);
  return head;
}

TEST(Forwarding, StripsFerryHeadersFromUntrustedClients) {
  const Forwarding filter;
  const http::RequestHead head = Forward(filter, "10.1.2.3");
  EXPECT_FALSE(head.headers.Has("x-ferry-deadline-ms"));
  EXPECT_FALSE(head.headers.Has("x-ferry-caller"));
  EXPECT_EQ(head.headers.Get("x-forwarded-for"), "10.1.2.3");
}

TEST(Forwarding, CallerIsTheVerifiedPeerOnly) {
  const Forwarding filter;
  const http::RequestHead head = Forward(filter, "10.1.2.3", "spiffe://mesh.test/service/orders");
  EXPECT_EQ(head.headers.Get("x-ferry-caller"), "spiffe://mesh.test/service/orders");
  int callers = 0;
  head.headers.ForEach(
      [&](const http::Headers::Field& f) { callers += f.name == "x-ferry-caller"; });
  EXPECT_EQ(callers, 1);  // the spoofed one is gone
}

TEST(Forwarding, ProtoSaysHttpsOnTlsListeners) {
  EXPECT_EQ(Forward(Forwarding(), "10.1.2.3").headers.Get("x-forwarded-proto"), "http");
  EXPECT_EQ(Forward(Forwarding({}, /*https=*/true), "10.1.2.3").headers.Get("x-forwarded-proto"),
            "https");
}

TEST(Forwarding, KeepsTheDeadlineOfATrustedNetworkOnly) {
  auto network = config::ParseIpNetwork("10.1.0.0/16");
  ASSERT_TRUE(network);
  const Forwarding filter({*network});
  const http::RequestHead trusted = Forward(filter, "10.1.2.3");
  EXPECT_EQ(trusted.headers.Get("x-ferry-deadline-ms"), "250");
  EXPECT_FALSE(trusted.headers.Has("x-ferry-caller"));  // only the deadline is trusted
  const http::RequestHead other = Forward(filter, "10.2.0.1");
  EXPECT_FALSE(other.headers.Has("x-ferry-deadline-ms"));
}

TEST(Forwarding, TheFactoryTakesTheRoutesListenerNetworks) {
  config::Config config;
  config::Listener trusting;
  trusting.trust_deadline_from.push_back(*config::ParseIpNetwork("127.0.0.1"));
  trusting.routes.emplace_back();
  config::Listener plain;
  plain.routes.emplace_back();
  config.listeners = {trusting, plain};
  auto first = MakeForwarding(config.listeners[0].routes[0], config);
  auto second = MakeForwarding(config.listeners[1].routes[0], config);
  EXPECT_TRUE(Forward(static_cast<const Forwarding&>(*first), "127.0.0.1")
                  .headers.Has("x-ferry-deadline-ms"));
  EXPECT_FALSE(Forward(static_cast<const Forwarding&>(*second), "127.0.0.1")
                   .headers.Has("x-ferry-deadline-ms"));
}

}  // namespace
}  // namespace ferry::proxy::filters
