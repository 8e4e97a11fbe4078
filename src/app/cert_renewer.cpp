#include "app/cert_renewer.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <vector>

#include "app/http_client.hpp"
#include "config/address.hpp"
#include "mesh/atomic_file.hpp"
#include "mesh/csr.hpp"
#include "mesh/spiffe.hpp"
#include "runtime/asio.hpp"
#include "runtime/connect.hpp"
#include "runtime/deadline.hpp"
#include "runtime/task_group.hpp"
#include "tls/client_context.hpp"
#include "upstream/resolver.hpp"

namespace ferry::app {
namespace {

using SystemClock = std::chrono::system_clock;

constexpr Duration kConnectTimeout = std::chrono::seconds(5);
constexpr Duration kExchangeTimeout = std::chrono::seconds(15);  // handshake to last byte
constexpr Duration kFirstBackoff = std::chrono::seconds(1);
constexpr Duration kMaxBackoff = std::chrono::seconds(60);
// A certificate this close to its end is not presented (clocks differ; the CA would refuse it).
constexpr Duration kExpiryMargin = std::chrono::seconds(2);
// Never two successful renewals closer than this: a CA handing out certificates too short to
// plan with must not make the node renew in a loop.
constexpr Duration kMinInterval = std::chrono::seconds(1);
constexpr std::size_t kMaxResponseBytes = 64 * 1024;
constexpr std::string_view kSignPath = "/v1/sign";

struct CaUrl {
  std::string host;  // a name or an IP (IPv6 without brackets)
  std::uint16_t port = 443;
  std::string path;  // a prefix ("" or "/x"), before /v1/sign
};

// "https://HOST[:PORT][/PREFIX]"; the loader has checked the scheme.
Result<CaUrl> ParseCaUrl(std::string_view text) {
  constexpr std::string_view kScheme = "https://";
  auto bad = [&](std::string_view why) {
    return Fail(ErrorCode::kInvalidArgument, fmt::format("mesh.renew.url '{}': {}", text, why));
  };
  if (!text.starts_with(kScheme)) return bad("not https://");
  std::string_view rest = text.substr(kScheme.size());
  CaUrl url;
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    url.path = std::string(rest.substr(slash));
    while (url.path.ends_with('/')) url.path.pop_back();
  }
  std::string_view port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad("an unclosed '['");
    url.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (after.starts_with(':')) port = after.substr(1);
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (url.host.empty()) return bad("no host");
  if (!port.empty()) {
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), url.port);
    if (ec != std::errc() || ptr != port.data() + port.size() || url.port == 0) {
      return bad("a bad port");
    }
  }
  return url;
}

// The CA's answer, or why there is none.
struct PostResult {
  Result<HttpResponse> response = Fail(ErrorCode::kInternal, "the exchange did not run");
};

// POSTs `request` over TLS to ip:port and reads the whole response, all within the timeouts.
Task<void> PostOverTls(asio::io_context& io, const tls::ClientContext& tls, std::string ip,
                       std::string host, std::uint16_t port, std::string request, PostResult* out) {
  auto connected = co_await runtime::Connect(io, ip, port, kConnectTimeout);
  if (!connected) {
    out->response = tl::unexpected(connected.error());
    co_return;
  }
  const std::string where = fmt::format("{}:{}", host, port);
  auto secured = co_await tls.Handshake(std::move(*connected), host, where, kConnectTimeout);
  if (!secured) {
    out->response = tl::unexpected(secured.error());
    co_return;
  }
  std::unique_ptr<runtime::Stream> stream = std::move(*secured);
  runtime::Deadline<runtime::Stream> deadline(io, *stream);
  deadline.Arm(kExchangeTimeout);
  std::size_t sent = 0;
  while (sent < request.size()) {
    auto [ec, n] = co_await stream->async_write_some(
        asio::buffer(request.data() + sent, request.size() - sent), kNoThrow);
    if (ec) {
      out->response =
          Fail(deadline.expired() ? ErrorCode::kDeadlineExceeded : ErrorCode::kConnectionClosed,
               fmt::format("sending to {}: {}", where, ec.message()));
      co_return;
    }
    sent += n;
  }
  ResponseReader reader;
  std::array<char, 8192> buffer{};
  std::size_t received = 0;
  ResponseReader::State state = ResponseReader::State::kIncomplete;
  while (state == ResponseReader::State::kIncomplete) {
    auto [ec, n] = co_await stream->async_read_some(asio::buffer(buffer), kNoThrow);
    if (ec == asio::error::eof) {
      state = reader.Finish();
      break;
    }
    if (ec) {
      out->response =
          Fail(deadline.expired() ? ErrorCode::kDeadlineExceeded : ErrorCode::kConnectionClosed,
               fmt::format("reading from {}: {}", where, ec.message()));
      co_return;
    }
    received += n;
    if (received > kMaxResponseBytes) {
      out->response = Fail(ErrorCode::kUpstreamProtocol,
                           fmt::format("{} answered more than {} bytes", where, kMaxResponseBytes));
      co_return;
    }
    state = reader.Read(std::string_view(buffer.data(), n));
  }
  stream->Close();
  if (state != ResponseReader::State::kComplete) {
    out->response = tl::unexpected(reader.error());
    co_return;
  }
  out->response = std::move(reader.response());
}

// Runs PostOverTls on an event loop of its own, to the end. `interruptible` is told how to end
// the loop early (from another thread) while it runs, and nothing afterwards.
Result<HttpResponse> Post(const tls::ClientContext& tls, const std::string& ip, const CaUrl& url,
                          std::string request, CertRenewer::Interruptible& interruptible) {
  asio::io_context io{1};
  PostResult result;
  if (!interruptible.Begin([&io] { io.stop(); })) {
    return Fail(ErrorCode::kCancelled, "the node is stopping");
  }
  {
    runtime::TaskGroup tasks(io.get_executor());
    tasks.Spawn(PostOverTls(io, tls, ip, url.host, url.port, std::move(request), &result));
    io.run();
  }
  interruptible.End();
  if (io.stopped() && !result.response && result.response.error().code() == ErrorCode::kInternal) {
    return Fail(ErrorCode::kCancelled, "the node is stopping");
  }
  return std::move(result.response);
}

// The error message of a refusal: the JSON error's message when there is one.
std::string Refusal(const HttpResponse& response) {
  std::string body = response.body.substr(0, 512);
  while (!body.empty() && (body.back() == '\n' || body.back() == '\r')) body.pop_back();
  return fmt::format("the CA answered {}: {}", response.status, body);
}

std::string Trimmed(std::string text) {
  const auto end = text.find_last_not_of(" \t\r\n");
  text.erase(end == std::string::npos ? 0 : end + 1);
  const auto begin = text.find_first_not_of(" \t\r\n");
  text.erase(0, begin == std::string::npos ? text.size() : begin);
  return text;
}

std::string Iso(SystemClock::time_point t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}",
                     std::chrono::time_point_cast<std::chrono::seconds>(t));
}

}  // namespace

CertRenewer::CertRenewer(config::Mesh mesh) : mesh_(std::move(mesh)) {}

CertRenewer::~CertRenewer() { Stop(); }

SystemClock::time_point CertRenewer::RenewAt(const mesh::CertificateInfo& info) {
  return info.not_before + (info.not_after - info.not_before) * 2 / 3;
}

std::optional<mesh::CertificateInfo> CertRenewer::Current(const config::Mesh& mesh,
                                                          const std::string& identity) const {
  auto info = mesh::ReadWorkloadCertificate(mesh.cert, mesh.key);
  if (!info) return std::nullopt;
  const auto now = SystemClock::now();
  if (info->not_after <= now + kExpiryMargin || info->not_before > now) return std::nullopt;
  if (info->spiffe_id != identity) return std::nullopt;
  return std::move(*info);
}

Result<mesh::CertificateInfo> CertRenewer::Renew(const config::Mesh& mesh) {
  const config::MeshRenewal& renew = *mesh.renew;
  auto domain = mesh::TrustDomainOfBundle(mesh.ca);
  if (!domain) return tl::unexpected(domain.error());
  const std::string identity = mesh::ServiceId(*domain, renew.service);
  auto url = ParseCaUrl(renew.url);
  if (!url) return tl::unexpected(url.error());

  // The current certificate when it can speak for this identity; else the bootstrap token.
  config::ServiceTls tls;
  tls.ca = mesh.ca;
  HttpRequest request;
  request.method = "POST";
  request.target = url->path + std::string(kSignPath);
  const std::optional<mesh::CertificateInfo> current = Current(mesh, identity);
  if (current) {
    tls.client_certificate = config::TlsCertificate{mesh.cert, mesh.key};
  } else {
    if (renew.token_file.empty()) {
      return Fail(ErrorCode::kFailedPrecondition,
                  fmt::format("no valid certificate for {} in {} and no renew.token_file to get "
                              "a first one with",
                              identity, mesh.cert));
    }
    auto token = mesh::ReadWholeFile(renew.token_file);
    if (!token) return tl::unexpected(token.error());
    request.headers.emplace_back("authorization", "Bearer " + Trimmed(std::move(*token)));
  }
  auto context = tls::ClientContext::Create("ferry-ca", tls, nullptr);
  if (!context) return tl::unexpected(context.error());

  std::vector<std::string> addresses{url->host};
  if (!config::IsIpLiteral(url->host)) {
    auto resolved = upstream::SystemResolver().Resolve(url->host);
    if (!resolved) return tl::unexpected(resolved.error());
    addresses = std::move(*resolved);
  }
  auto made = mesh::MakeKeyAndCsr(identity);
  if (!made) return tl::unexpected(made.error());
  request.headers.emplace_back("content-type", "application/pkcs10");
  request.headers.emplace_back("host", url->host);
  request.body = made->csr_pem;

  // The bytes of the request (the blocking client's own writer is for plain sockets).
  std::string bytes = fmt::format("{} {} HTTP/1.1\r\n", request.method, request.target);
  for (const auto& [name, value] : request.headers) bytes += fmt::format("{}: {}\r\n", name, value);
  bytes += fmt::format("content-length: {}\r\nconnection: close\r\n\r\n", request.body.size());
  bytes += request.body;

  // Each address of the name in turn, while connections are refused (localhost: ::1, then
  // 127.0.0.1); any other failure is the answer.
  Result<HttpResponse> response = Fail(ErrorCode::kUnavailable, "no address");
  for (const std::string& ip : addresses) {
    response = Post(**context, ip, *url, bytes, interruptible_);
    if (response || response.error().code() != ErrorCode::kConnectFailed) break;
  }
  if (!response) {
    return Fail(response.error().code(),
                fmt::format("{}: {}", renew.url, response.error().message()));
  }
  if (response->status != 200) {
    // A refusal (4xx: a spent token, a wrong identity) stays one until someone acts; a 5xx
    // may pass.
    const bool refused = response->status >= 400 && response->status < 500;
    return Fail(refused ? ErrorCode::kFailedPrecondition : ErrorCode::kUnavailable,
                Refusal(*response));
  }
  auto issued = mesh::CheckIssuedCertificate(response->body, made->key_pem, identity, mesh.ca);
  if (!issued) return tl::unexpected(issued.error());
  // The key first: until the certificate follows, the node's watch sees a pair that does not
  // fit and keeps the running one.
  if (auto r = mesh::WriteFileAtomically(mesh.key, made->key_pem, 0600, false); !r) {
    return tl::unexpected(r.error());
  }
  if (auto r = mesh::WriteFileAtomically(mesh.cert, response->body, 0644, false); !r) {
    return tl::unexpected(r.error());
  }
  spdlog::info("mesh: renewed {} (serial {}, until {}; authenticated by {})", identity,
               issued->serial, Iso(issued->not_after),
               current ? "the current certificate" : "the bootstrap token");
  return issued;
}

Result<mesh::CertificateInfo> CertRenewer::RenewOnce() {
  std::optional<config::Mesh> mesh;
  {
    std::lock_guard lock(mutex_);
    mesh = mesh_;
  }
  if (!mesh || !mesh->renew) return Fail(ErrorCode::kFailedPrecondition, "mesh.renew is not set");
  auto renewed = Renew(*mesh);
  if (renewed) {
    renewals_.fetch_add(1);
    expiry_.store(static_cast<double>(SystemClock::to_time_t(renewed->not_after)));
  } else {
    failures_.fetch_add(1);
  }
  return renewed;
}

Result<void> CertRenewer::EnsureCertificate(Duration patience, const std::function<bool()>& stop) {
  std::optional<config::Mesh> mesh;
  {
    std::lock_guard lock(mutex_);
    mesh = mesh_;
  }
  if (!mesh || !mesh->renew) return Ok();
  auto domain = mesh::TrustDomainOfBundle(mesh->ca);
  if (!domain) return tl::unexpected(domain.error());
  if (auto current = Current(*mesh, mesh::ServiceId(*domain, mesh->renew->service))) {
    expiry_.store(static_cast<double>(SystemClock::to_time_t(current->not_after)));
    return Ok();
  }
  spdlog::info("mesh: no valid certificate for service {} in {}; asking {}", mesh->renew->service,
               mesh->cert, mesh->renew->url);
  const auto give_up = std::chrono::steady_clock::now() + patience;
  Duration backoff = kFirstBackoff;
  while (true) {
    auto renewed = RenewOnce();
    if (renewed) return Ok();
    // A refusal or a missing token is not worth waiting for; an unreachable CA may come.
    if (renewed.error().code() == ErrorCode::kFailedPrecondition ||
        std::chrono::steady_clock::now() + backoff > give_up) {
      return tl::unexpected(renewed.error());
    }
    spdlog::warn("mesh: getting a certificate failed ({}); again in {}", renewed.error().message(),
                 FormatDuration(backoff));
    const auto retry_at = std::chrono::steady_clock::now() + backoff;
    while (std::chrono::steady_clock::now() < retry_at) {
      if (stop && stop()) return Fail(ErrorCode::kCancelled, "stopped while waiting for the CA");
      std::this_thread::sleep_for(std::min<Duration>(std::chrono::milliseconds(100),
                                                     retry_at - std::chrono::steady_clock::now()));
    }
    if (stop && stop()) return Fail(ErrorCode::kCancelled, "stopped while waiting for the CA");
    backoff = std::min(backoff * 2, kMaxBackoff);
  }
}

void CertRenewer::Start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { Run(); });
}

bool CertRenewer::Interruptible::Begin(std::function<void()> interrupt) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  interrupt_ = std::move(interrupt);
  return true;
}

void CertRenewer::Interruptible::End() {
  std::lock_guard lock(mutex_);
  interrupt_ = nullptr;
}

void CertRenewer::Interruptible::Interrupt() {
  std::lock_guard lock(mutex_);
  stopping_ = true;
  if (interrupt_) interrupt_();
}

void CertRenewer::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  interruptible_.Interrupt();  // an exchange in flight ends now, not at its timeout
  if (thread_.joinable()) thread_.join();
}

void CertRenewer::Update(std::optional<config::Mesh> mesh) {
  {
    std::lock_guard lock(mutex_);
    if (mesh_ == mesh) return;
    mesh_ = std::move(mesh);
    updated_ = true;
  }
  wake_.notify_all();
}

void CertRenewer::Run() {
  Duration backoff = kFirstBackoff;
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    updated_ = false;
    if (!mesh_ || !mesh_->renew) {
      wake_.wait(lock, [this] { return stopping_ || updated_; });
      continue;
    }
    const config::Mesh mesh = *mesh_;
    lock.unlock();
    // When is the next renewal due? Now when the certificate is not usable.
    SystemClock::time_point due = SystemClock::now();
    auto domain = mesh::TrustDomainOfBundle(mesh.ca);
    if (domain) {
      if (auto current = Current(mesh, mesh::ServiceId(*domain, mesh.renew->service))) {
        due = RenewAt(*current);
        expiry_.store(static_cast<double>(SystemClock::to_time_t(current->not_after)));
      }
    }
    lock.lock();
    if (due > SystemClock::now()) {
      spdlog::debug("mesh: next renewal at {}", Iso(due));
      wake_.wait_until(lock, due, [this] { return stopping_ || updated_; });
      continue;  // plan again: woken early, or due now
    }
    lock.unlock();
    auto renewed = RenewOnce();
    lock.lock();
    Duration pause = kMinInterval;
    if (renewed) {
      backoff = kFirstBackoff;
    } else {
      spdlog::warn("mesh: renewal failed ({}); again in {}", renewed.error().message(),
                   FormatDuration(backoff));
      pause = backoff;
      backoff = std::min(backoff * 2, kMaxBackoff);
    }
    wake_.wait_for(lock, pause, [this] { return stopping_ || updated_; });
  }
}

}  // namespace ferry::app
