#include "bus/nats/nats_client.hpp"

#include <spdlog/spdlog.h>

namespace ferry::bus::nats {

void OnDisconnected(natsConnection*, void* closure) {
  auto* shared = static_cast<NatsShared*>(closure);
  shared->connected = false;
  ++shared->disconnects;
  spdlog::warn("bus: disconnected from NATS; reconnecting");
}

void OnReconnected(natsConnection* nc, void* closure) {
  auto* shared = static_cast<NatsShared*>(closure);
  shared->connected = true;
  ++shared->reconnects;
  char url[256] = {0};
  natsConnection_GetConnectedUrl(nc, url, sizeof(url));
  spdlog::info("bus: reconnected to NATS at {}", url);
}

void OnClosed(natsConnection*, void* closure) {
  static_cast<NatsShared*>(closure)->connected = false;
}

void OnPubAck(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* shared = static_cast<NatsShared*>(closure);
  std::uint64_t token = 0;
  {
    std::lock_guard lock(shared->mutex);
    auto it = shared->pending.find(msg);
    if (it == shared->pending.end()) return;  // not one of ours (cannot happen)
    token = it->second;
    shared->pending.erase(it);
  }
  PubAckResult result;
  if (pae != nullptr) {
    result.status = pae->Err == NATS_OK ? NATS_ERR : pae->Err;
    result.error_code = static_cast<int>(pae->ErrCode);
    if (pae->ErrText != nullptr) result.error_text = pae->ErrText;
    ++shared->publish_errors;
  } else if (pa != nullptr) {
    result.sequence = pa->Sequence;
    result.duplicate = pa->Duplicate;
    ++(pa->Duplicate ? shared->publish_duplicates : shared->publish_acks);
  } else {
    result.status = NATS_ERR;
  }
  // The shared state outlives the broker; the task checks `alive` on the bus thread.
  shared->post([shared, token, result = std::move(result)]() mutable {
    if (shared->alive && shared->on_pub_ack) shared->on_pub_ack(token, std::move(result));
  });
}

}  // namespace ferry::bus::nats
