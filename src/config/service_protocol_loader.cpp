#include "config/service_protocol_loader.hpp"

#include <fmt/format.h>

namespace ferry::config::internal {

namespace {

class ProtocolReader : public StrictReader {
 public:
  explicit ProtocolReader(Diagnostics& diags) : StrictReader(diags) {}

  void Read(MapReader& map, Service& service) {
    auto protocol = map.Take("protocol");
    if (protocol) {
      if (auto text = ReadString(*protocol, d_)) {
        if (*text == "http1") {
          service.protocol = UpstreamProtocol::kHttp1;
        } else if (*text == "http2") {
          service.protocol = UpstreamProtocol::kHttp2;
        } else if (*text == "auto") {
          service.protocol = UpstreamProtocol::kAuto;
          // ALPN is what picks the protocol: without TLS there is nothing to negotiate with.
          if (!service.tls) {
            Error(*protocol,
                  "protocol: auto needs the service's tls: (ALPN picks h2 or http/1.1); use "
                  "http2 for h2c with prior knowledge");
          }
        } else {
          Error(*protocol,
                fmt::format("unknown protocol '{}' (expected one of: http1, http2, auto)", *text));
        }
      }
    }
    if (auto http2 = map.Take("http2")) {
      if (service.protocol == UpstreamProtocol::kHttp1) {
        Error(*http2, "http2: is only used with protocol: http2 or protocol: auto");
      }
      MapReader block(*http2, d_);
      Assign(block, "max_streams_per_connection", service.http2.max_streams_per_connection,
             [&](const Field& f) { return ReadInt(f, 1, 1'000'000, d_); });
      Assign(block, "keepalive_interval", service.http2.keepalive_interval,
             [&](const Field& f) { return ReadDuration(f, d_); });
      block.Finish();
    }
  }
};

}  // namespace

void ReadServiceProtocol(MapReader& map, Service& service, Diagnostics& diags) {
  ProtocolReader(diags).Read(map, service);
}

}  // namespace ferry::config::internal
