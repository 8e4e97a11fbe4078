// Internal to src/bus/api: co_await on a broker call that answers by callback (Publish, Receive,
// Ack, ...). The broker posts its callbacks to the bus thread (broker.hpp), so the coroutine
// resumes there, never from inside the call.
#pragma once

#include <memory>
#include <utility>

#include "runtime/asio.hpp"

namespace ferry::bus {

// `start(done)` makes the call, and `done(T)` resumes the coroutine. `start` is the caller's
// named lambda (no temporaries with destructors inside co_await: GCC 12 bug), alive until the
// co_await ends. No coroutine frame or std::function of its own: this is on the publish path.
template <typename T, typename Start>
auto AwaitCallback(const Start& start) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(T)>(
      [&start](auto handler) {
        auto shared = std::make_shared<decltype(handler)>(std::move(handler));
        start([shared](T value) { (*shared)(std::move(value)); });
      },
      asio::use_awaitable);
}

}  // namespace ferry::bus
