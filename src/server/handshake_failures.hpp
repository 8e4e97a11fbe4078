// The node's one count of failed client TLS handshakes, for every server that terminates TLS
// (the proxy's listeners, the admin API, the bus API): each one's Handler::HandshakeFailed adds
// to this counter in its own slot.
#pragma once

namespace ferry::observability {
class Counter;
class MetricsRegistry;
}  // namespace ferry::observability

namespace ferry::server {

// ferry_tls_handshake_failures_total, registered once (later calls give the same series);
// null only if the registry refuses the name.
observability::Counter* HandshakeFailures(observability::MetricsRegistry& registry);

}  // namespace ferry::server
