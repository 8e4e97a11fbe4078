#include "proxy/tunnel.hpp"

#include <algorithm>
#include <array>
#include <vector>

#include "runtime/stream.hpp"
#include "runtime/task_group.hpp"

namespace ferry::proxy {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr std::size_t kBufferBytes = 16 * 1024;

// What the two directions and the watchdog share (in the relay's frame, which outlives both).
struct Relay {
  explicit Relay(asio::any_io_executor executor) : timer(std::move(executor)) {}
  asio::steady_timer timer;  // the watchdog's: the next limit; cancelled when both ended
  SteadyClock::time_point last_activity = SteadyClock::now();
  int running = 2;
  bool stop = false;  // the watchdog ended the tunnel: no new I/O
  TunnelResult result;
};

void StopBoth(runtime::Stream& a, runtime::Stream& b) {
  error_code ignored;
  a.cancel(ignored);
  b.cancel(ignored);
}

// One direction: `early` first, then whatever `from` gives, to `to`. Its EOF becomes `to`'s
// (a half-close: the other direction goes on, as a WebSocket closing handshake needs); an
// error ends both.
Task<void> Pump(runtime::Stream& from, runtime::Stream& to, std::string_view early,
                std::uint64_t& counter, Relay& relay) {
  bool failed = false;
  if (!early.empty()) {
    auto [ec, n] =
        co_await asio::async_write(to, asio::buffer(early.data(), early.size()), kNoThrow);
    failed = static_cast<bool>(ec);
    counter += n;
  }
  std::vector<char> buffer(failed ? 0 : kBufferBytes);
  while (!failed && !relay.stop) {
    auto [ec, n] = co_await from.async_read_some(asio::buffer(buffer), kNoThrow);
    if (ec) {
      failed = ec != asio::error::eof;
      break;
    }
    relay.last_activity = SteadyClock::now();
    if (relay.stop) break;
    auto [wec, written] = co_await asio::async_write(to, asio::buffer(buffer.data(), n), kNoThrow);
    counter += written;
    if (wec) failed = true;
  }
  if (failed) {
    StopBoth(from, to);
  } else {
    to.ShutdownSend();
  }
  if (--relay.running == 0) relay.timer.cancel();
}

}  // namespace

Task<TunnelResult> RelayTunnel(runtime::Stream& client, std::string_view client_early,
                               runtime::Stream& upstream, std::string_view upstream_early,
                               TunnelLimits limits) {
  Relay relay(client.get_executor());
  runtime::TaskGroup group(client.get_executor());
  group.Spawn(Pump(client, upstream, client_early, relay.result.to_upstream, relay));
  group.Spawn(Pump(upstream, client, upstream_early, relay.result.to_client, relay));
  const auto start = SteadyClock::now();
  // The watchdog: wakes at the nearer limit; activity since then moves the idle one on.
  while (relay.running > 0) {
    auto until = SteadyClock::time_point::max();
    if (limits.idle.count() > 0) until = relay.last_activity + limits.idle;
    if (limits.max_duration.count() > 0) until = std::min(until, start + limits.max_duration);
    relay.timer.expires_at(until);
    auto [ec] = co_await relay.timer.async_wait(kNoThrow);
    if (relay.running == 0) break;
    const auto now = SteadyClock::now();
    if (ec) {
      relay.result.cancelled = true;  // (only the relay's own cancellation stops the timer)
    } else if (limits.max_duration.count() > 0 && now >= start + limits.max_duration) {
      relay.result.max_duration_reached = true;
    } else if (limits.idle.count() > 0 && now >= relay.last_activity + limits.idle) {
      relay.result.idle_timed_out = true;
    } else {
      continue;
    }
    relay.stop = true;
    StopBoth(client, upstream);
    group.CancelAll();
    break;
  }
  co_await group.Wait();
  co_return relay.result;
}

}  // namespace ferry::proxy
