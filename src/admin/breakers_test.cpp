#include "admin/breakers.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>

namespace ferry::admin {
namespace {

class Breakers : public ::testing::Test {
 protected:
  Breakers()
      : a_("alpha", config::CircuitBreakerPolicy{}, clock_, nullptr),
        b_("beta", std::nullopt, clock_, nullptr) {}
  std::vector<resilience::CircuitBreaker*> All() { return {&a_, &b_}; }
  AdminResponse Post(std::string_view path, std::string_view body) {
    return SetBreakerMode(AdminRequest{"POST", path, body}, All());
  }

  FakeClock clock_;
  resilience::CircuitBreaker a_;
  resilience::CircuitBreaker b_;
};

TEST_F(Breakers, ListShowsEachServicesStateAndMode) {
  b_.SetMode(resilience::BreakerMode::kForcedOpen);
  const AdminResponse r = ListBreakers(All());
  EXPECT_EQ(r.status, 200);
  const auto doc = boost::json::parse(r.body);
  EXPECT_EQ(doc.at("alpha").at("state"), "closed");
  EXPECT_EQ(doc.at("alpha").at("mode"), "auto");
  EXPECT_EQ(doc.at("alpha").at("configured"), true);
  EXPECT_EQ(doc.at("beta").at("state"), "open");
  EXPECT_EQ(doc.at("beta").at("mode"), "open");
  EXPECT_EQ(doc.at("beta").at("configured"), false);
}

TEST_F(Breakers, DescribeIsWhatListAnswers) {
  a_.SetMode(resilience::BreakerMode::kForcedOpen);
  const boost::json::object doc = DescribeBreakers(All());
  EXPECT_EQ(doc.at("alpha").at("state"), "open");
  EXPECT_EQ(doc.at("beta").at("state"), "closed");
  EXPECT_EQ(boost::json::value(doc), boost::json::parse(ListBreakers(All()).body));
}

TEST_F(Breakers, PostSetsTheMode) {
  AdminResponse r = Post("/breakers/alpha", R"({"mode": "open"})");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(a_.mode(), resilience::BreakerMode::kForcedOpen);
  EXPECT_EQ(a_.Allow(), resilience::Admission::kRejected);
  EXPECT_EQ(boost::json::parse(r.body).at("state"), "open");
  r = Post("/breakers/alpha", R"({"mode": "closed"})");
  EXPECT_EQ(a_.mode(), resilience::BreakerMode::kForcedClosed);
  EXPECT_EQ(a_.state(), resilience::BreakerState::kClosed);
  r = Post("/breakers/alpha", R"({"mode": "auto"})");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(a_.mode(), resilience::BreakerMode::kAuto);
}

TEST_F(Breakers, UnknownServiceIs404) {
  const AdminResponse r = Post("/breakers/gamma", R"({"mode": "open"})");
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("\"not_found\""), std::string::npos);
}

TEST_F(Breakers, ABadBodyIs400AndChangesNothing) {
  for (std::string_view body : {"", "nope", "[]", R"({"mode": 1})", R"({"mode": "half_open"})",
                                R"({"mode": "open", "extra": 1})", R"({})"}) {
    const AdminResponse r = Post("/breakers/alpha", body);
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_NE(r.body.find("\"bad_request\""), std::string::npos);
  }
  EXPECT_EQ(a_.mode(), resilience::BreakerMode::kAuto);
}

}  // namespace
}  // namespace ferry::admin
