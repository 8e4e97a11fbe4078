// Send (http_client.hpp) with the TLS of an https:// URL set up the way Ferry verifies servers
// (tls/client_context.hpp): the chain against a CA bundle, else the system's roots; the name
// of the URL's host (a DNS name against the certificate's SAN DNS names, an IP against its SAN
// IPs); TLS 1.2 or 1.3, ALPN http/1.1. For the node's JWKS fetch and the bus CLI.
// Thread safety: none needed; each call makes its own context (the CA file is read per call,
// so a changed bundle is seen by the next one).
#pragma once

#include <chrono>
#include <string>

#include "app/http_client.hpp"
#include "core/result.hpp"

namespace ferry::app {

// An http:// URL goes through Send as is. `ca_file`: the CA bundle ("" = the system's store,
// /etc/ssl/certs on Debian). Errors: Send's, and those of reading `ca_file` (kInvalidArgument).
Result<HttpResponse> SendVerified(const Url& url, const HttpRequest& request,
                                  std::chrono::milliseconds timeout, const std::string& ca_file);

}  // namespace ferry::app
