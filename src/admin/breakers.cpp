#include "admin/breakers.hpp"

#include <fmt/format.h>

#include <boost/json.hpp>

#include "server/exchange.hpp"

namespace ferry::admin {
namespace {

boost::json::object Describe(const resilience::CircuitBreaker& breaker) {
  boost::json::object o;
  o["state"] = resilience::StateName(breaker.state());
  o["mode"] = resilience::ModeName(breaker.mode());
  o["configured"] = breaker.policy().has_value();
  return o;
}

AdminResponse BadRequest(std::string_view message) {
  return {400, "application/json", server::ErrorJson(400, "bad_request", message)};
}

}  // namespace

boost::json::object DescribeBreakers(const std::vector<resilience::CircuitBreaker*>& breakers) {
  boost::json::object doc;
  for (const resilience::CircuitBreaker* b : breakers) doc[b->service()] = Describe(*b);
  return doc;
}

AdminResponse ListBreakers(const std::vector<resilience::CircuitBreaker*>& breakers) {
  return {200, "application/json", boost::json::serialize(DescribeBreakers(breakers)) + "\n"};
}

AdminResponse SetBreakerMode(const AdminRequest& request,
                             const std::vector<resilience::CircuitBreaker*>& breakers) {
  const std::string_view service = request.path.substr(kBreakersPrefix.size());
  resilience::CircuitBreaker* breaker = nullptr;
  for (resilience::CircuitBreaker* b : breakers) {
    if (b->service() == service) breaker = b;
  }
  if (breaker == nullptr) {
    return {404, "application/json",
            server::ErrorJson(404, "not_found", fmt::format("no service {}", service))};
  }
  boost::system::error_code ec;
  const boost::json::value body = boost::json::parse(request.body, ec);
  const boost::json::object* o = ec ? nullptr : body.if_object();
  if (o == nullptr || o->size() != 1 || !o->contains("mode") || !o->at("mode").is_string()) {
    return BadRequest(R"(the body must be {"mode": "open"|"closed"|"auto"})");
  }
  const auto& text = o->at("mode").get_string();
  const auto mode = resilience::ParseMode(std::string_view(text.data(), text.size()));
  if (!mode) return BadRequest(R"(mode must be "open", "closed" or "auto")");
  breaker->SetMode(*mode);
  boost::json::object doc = Describe(*breaker);
  doc["service"] = breaker->service();
  return {200, "application/json", boost::json::serialize(doc) + "\n"};
}

}  // namespace ferry::admin
