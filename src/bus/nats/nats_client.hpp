// What NatsBroker shares with libnats' threads: the post function, the connection's state and
// counters (atomics, read by the metrics at scrape time), and the publishes awaiting their
// PubAck, keyed by the natsMsg libnats hands back. Internal to src/bus/nats; includes nats.h, so
// only its .cpp files include it.
//
// Threading: the callbacks run on libnats' threads and only post (or touch atomics and the
// mutex-guarded map); everything else runs on the bus thread. `alive` is cleared by the
// broker's destructor on the bus thread, and every posted task checks it first, so a callback
// that fires during the close never reaches a destroyed broker.
#pragma once

#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "bus/broker_options.hpp"

namespace ferry::bus::nats {

// The answer to one JetStream publish.
struct PubAckResult {
  natsStatus status = NATS_OK;  // NATS_OK: stored (or a duplicate)
  int error_code = 0;           // the JetStream error code, when the server gave one
  std::string error_text;
  std::uint64_t sequence = 0;
  bool duplicate = false;
};

struct NatsShared {
  PostFn post;
  std::atomic<bool> alive{true};
  std::atomic<bool> connected{false};
  std::atomic<std::uint64_t> reconnects{0};
  std::atomic<std::uint64_t> disconnects{0};
  std::atomic<std::uint64_t> publish_acks{0};        // PubAcks of stored messages
  std::atomic<std::uint64_t> publish_duplicates{0};  // PubAcks saying "duplicate"
  std::atomic<std::uint64_t> publish_errors{0};      // errors and timeouts (each retry counted)
  std::atomic<std::uint64_t> redeliveries{0};        // deliveries with attempt > 1
  std::atomic<std::uint64_t> dead_letters{0};        // copies stored in the dead-letter stream

  // Publishes in flight: the natsMsg (owned by libnats until its ack handler returns) to the
  // broker's token for it.
  std::mutex mutex;
  std::map<const natsMsg*, std::uint64_t> pending;
  // Runs on the bus thread (posted) with each publish's answer.
  std::function<void(std::uint64_t token, PubAckResult)> on_pub_ack;
};

// The libnats callbacks; closure: a NatsShared* that stays valid for the process (see above).
void OnDisconnected(natsConnection* nc, void* closure);
void OnReconnected(natsConnection* nc, void* closure);
void OnClosed(natsConnection* nc, void* closure);
void OnPubAck(jsCtx* js, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure);

// A natsMsg owned by the bus thread.
struct MsgDeleter {
  void operator()(natsMsg* m) const { natsMsg_Destroy(m); }
};
using MsgPtr = std::unique_ptr<natsMsg, MsgDeleter>;

}  // namespace ferry::bus::nats
