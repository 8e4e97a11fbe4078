#include "app/verified_send.hpp"

#include "tls/client_context.hpp"

namespace ferry::app {

Result<HttpResponse> SendVerified(const Url& url, const HttpRequest& request,
                                  std::chrono::milliseconds timeout, const std::string& ca_file) {
  if (!url.https) return Send(url, request, timeout);
  config::ServiceTls settings;
  settings.ca = ca_file;
  auto context = tls::ClientContext::Create(url.host, settings, nullptr);
  if (!context) return tl::unexpected(context.error());
  const tls::ClientContext& verifier = **context;
  TlsSettings tls;
  tls.context = verifier.native_handle();
  tls.server_name = verifier.ServerNameFor(url.host);
  tls.check_peer = [&verifier, &url](ssl_st* ssl) { return verifier.CheckPeer(ssl, url.host); };
  return Send(url, request, timeout, &tls);
}

}  // namespace ferry::app
