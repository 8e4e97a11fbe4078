// For filter unit tests only: one exchange as a filter sees it. The FilterContext refers to the
// head, route, reply, observers and caller held beside it (client 127.0.0.1, request id
// "rid-1", the system clock, slot 0), so a test sets the head, calls OnRequest(context) and
// reads what the filter did. Not movable: the context points into it.
#pragma once

#include <memory>
#include <vector>

#include "proxy/filter_wait.hpp"

namespace ferry::proxy::filters {

struct TestExchange {
  TestExchange() = default;
  TestExchange(const TestExchange&) = delete;
  TestExchange& operator=(const TestExchange&) = delete;

  http::RequestHead head;
  config::Route route;
  LocalReply reply;
  std::vector<std::unique_ptr<ResponseObserver>> observers;
  CallerIdentity caller;
  Verdict verdict = Verdict::kContinue;
  FilterContext context{head,  route,         "127.0.0.1", "rid-1",   {},
                        reply, SystemClock(), 0,           observers, caller};
};

}  // namespace ferry::proxy::filters
