// One proxied request/response exchange, as the server's handler: route, the route's filters,
// then the upstream half through the service's upstream::Cluster (Send: endpoint pick, pooled
// connection, the keep-alive race retry, the route's timeout as the deadline), the request body
// streamed from the server's Request and the response body streamed back through its Response;
// log and count it. What goes wrong before the response starts is a ferry::Error whose code's
// HTTP status (core/error.cpp) is the status of the JSON reply.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <chrono>
#include <optional>
#include <span>
#include <string>

#include "http/serializer.hpp"
#include "proxy/filter_wait.hpp"
#include "proxy/grpc.hpp"
#include "proxy/listener_handler.hpp"
#include "proxy/local_reply.hpp"
#include "proxy/topic_stream.hpp"
#include "proxy/tunnel.hpp"
#include "proxy/websocket.hpp"
#include "resilience/client.hpp"
#include "upstream/cluster.hpp"

namespace ferry::proxy {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// The client's request body as the upstream client reads it: the server's Request, piece by
// piece, never whole. It cannot start again once a byte was read (those bytes are gone), so the
// keep-alive race is retried only before that. A read error is kept for the exchange to answer.
class ClientBody final : public upstream::BodySource {
 public:
  ClientBody(server::Request& request, std::optional<std::uint64_t> size)
      : request_(request), size_(size) {}
  std::optional<std::uint64_t> length() const override { return size_; }
  Task<Result<std::string_view>> Read() override {
    if (!prefix_.empty() && !prefix_sent_) {  // bytes read before (Prepend)
      prefix_sent_ = true;
      read_any_ = true;
      bytes_ += prefix_.size();
      co_return std::string_view(prefix_);
    }
    for (;;) {
      while (next_ < pieces_.size()) {
        const std::string_view piece = pieces_[next_++];
        if (!piece.empty()) co_return piece;
      }
      if (ended_) co_return std::string_view();
      read_any_ = true;
      auto got = co_await request_.ReadSome();
      if (!got) {
        error_ = got.error();
        co_return tl::unexpected(got.error());
      }
      if (got->empty()) ended_ = true;
      pieces_ = *got;
      next_ = 0;
      for (std::string_view p : pieces_) {
        bytes_ += p.size();
        if (meter_ != nullptr && meter_->Feed(p)) {
          error_ = Error(ErrorCode::kResourceExhausted,
                         fmt::format("a gRPC request message of {} bytes exceeds the route's "
                                     "grpc.max_message_bytes of {}",
                                     meter_->declared(), meter_->max()));
          co_return tl::unexpected(*error_);
        }
      }
    }
  }
  bool Rewind() override { return !read_any_; }
  // Checks the body's gRPC messages against a limit (null: none).
  void Meter(grpc::MessageMeter* meter) { meter_ = meter; }
  // The body's first bytes, read from the request already (and checked by the meter): they go
  // first.
  void Prepend(std::string bytes) { prefix_ = std::move(bytes); }
  // The client's trailers go on with the body's end (chunked to HTTP/1.1, HEADERS to HTTP/2).
  const http::Headers* trailers() const override { return ended_ ? request_.trailers() : nullptr; }

  const std::optional<Error>& error() const { return error_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  server::Request& request_;
  std::optional<std::uint64_t> size_;
  std::span<const std::string_view> pieces_;
  std::size_t next_ = 0;
  std::uint64_t bytes_ = 0;
  std::optional<Error> error_;
  grpc::MessageMeter* meter_ = nullptr;
  std::string prefix_;
  bool prefix_sent_ = false;
  bool read_any_ = false;
  bool ended_ = false;
};

// The whole request body, read before the upstream half (for the filters, or to be sent again by
// a retry), with the client's trailers.
class BufferedBody final : public upstream::BodySource {
 public:
  BufferedBody(std::string_view data, const server::Request* request)
      : data_(data), request_(request) {}
  std::optional<std::uint64_t> length() const override { return data_.size(); }
  Task<Result<std::string_view>> Read() override {
    const std::string_view piece = read_ ? std::string_view() : data_;
    read_ = true;
    co_return piece;
  }
  bool Rewind() override {
    read_ = false;
    return true;
  }
  const http::Headers* trailers() const override {
    return read_ && request_ != nullptr ? request_->trailers() : nullptr;
  }

 private:
  std::string_view data_;
  const server::Request* request_;
  bool read_ = false;
};

}  // namespace

// The state of one exchange, so each phase can be its own small coroutine. It is the upstream
// request's InterimSink: 1xx responses go on to the client as they come.
class ExchangeRunner final : public upstream::InterimSink {
 public:
  ExchangeRunner(WorkerState& worker, std::shared_ptr<const Snapshot> snapshot,
                 const ListenerPlan& listener, server::Request& request, server::Response& response)
      : w_(worker),
        clock_(w_.clock()),
        snapshot_(std::move(snapshot)),
        listener_(listener),
        request_(request),
        response_(response),
        req_(request.head()),
        client_body_(request, request.body_size()) {}

  // The exchange's start (a plain call); then Proxy, then Finish.
  void Start() {
    start_ = clock_.now();
    wall_start_ = clock_.wall();
    method_ = req_.method;
    original_target_ = req_.target;
    grpc_ = grpc::IsGrpc(req_.headers);
    if (auto id = req_.headers.Get("x-request-id"); id && !id->empty() && id->size() <= 200) {
      request_id_ = std::string(*id);
    } else {
      request_id_ = w_.NewRequestId();
    }
  }

 private:
  // Prepares the JSON error reply (a plain call: GCC 12 miscompiles temporaries with
  // destructors inside co_await expressions, so none are built there); its status is the
  // table's for `error`.
  void Answer(ErrorCode error, std::string_view code, std::string message) {
    status_ = Describe(error).http_status;
    reply_message_ = message;
    MakeErrorReply(reply_, Error(error, std::move(message)), code, request_id_);
  }
  // Sends the prepared reply (reply_, which a filter may have made). The server closes the
  // connection after it if the request's body was not read.
  Task<void> SendAnswer() {
    if (response_.head_written()) {  // too late for a reply: cut the connection
      response_.Abort();
      co_return;
    }
    if (!observers_.empty()) co_await EndObservers(reply_.status);
    if (chain_ != nullptr) {
      FilterContext context{req_,   *route_, request_.peer().ip, request_id_, body_,
                            reply_, clock_,  w_.slot(),          observers_,  caller_};
      const auto& filters = chain_->filters();
      for (auto it = filters.rbegin(); it != filters.rend(); ++it) {
        (*it)->OnLocalReply(context, reply_);
      }
    }
    w_.LocalReplyCounter(reply_.code).Add(w_.slot());
    if (grpc_) {
      // A gRPC client gets a gRPC status (Trailers-Only: one HEADERS frame, no body), never
      // an HTTP error it would have to map itself. A filter's reply says its code.
      grpc::MakeTrailersOnlyHead(reply_, reply_message_.empty() ? reply_.code : reply_message_,
                                 request_id_, reply_head_);
      grpc_status_ = grpc::StatusOf(&reply_head_.headers);
      response_.WriteHead(reply_head_, std::nullopt);
      co_await response_.Finish();
      co_return;
    }
    MakeReplyHead(reply_, request_id_, reply_head_);
    co_await response_.Send(reply_head_, reply_.body);
  }
  // Records why the exchange cannot go on (UpstreamFailed answers it).
  void Failed(ErrorCode error, std::string_view code, std::string message) {
    failure_.emplace(error, std::move(message));
    failure_code_ = code;
  }
  // Reading the request body failed (the server's Request says why).
  void BodyReadFailed(const Error& error) {
    switch (error.code()) {
      case ErrorCode::kResourceExhausted:
        return Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge, error.message());
      case ErrorCode::kInvalidArgument:
        return Failed(ErrorCode::kInvalidArgument, reply::kBadRequest, error.message());
      case ErrorCode::kDeadlineExceeded:
        return Failed(ErrorCode::kRequestTimeout, reply::kRequestTimeout,
                      "request not received within request_timeout");
      default:  // the client went away: there is no one to answer
        return Failed(ErrorCode::kCancelled, {}, "the client went away");
    }
  }
  void RouteTimedOut() {
    Failed(ErrorCode::kDeadlineExceeded, reply::kUpstreamTimeout,
           fmt::format("upstream {} did not answer within {}{}", route_->service,
                       FormatDuration(timeout_),
                       caller_deadline_ ? " (the caller's x-ferry-deadline-ms)"
                       : grpc_deadline_ ? " (the call's grpc-timeout)"
                                        : ""));
  }
  // Maps what Cluster::Send failed with to the proxy's replies and counters.
  void SendFailed(const Error& error) {
    if (const auto& body_error = client_body_.error()) return BodyReadFailed(*body_error);
    switch (error.code()) {
      case ErrorCode::kUnavailable:
        return Failed(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
                      "no healthy endpoint for service " + route_->service);
      case ErrorCode::kResourceExhausted:
        // The pool's own limit, or the service's concurrency limit, is to the client an
        // upstream that is unavailable for now.
        if (!report_.overloaded) service_series_->connect_failures->Add(w_.slot());
        return Failed(ErrorCode::kUnavailable, reply::kUpstreamOverloaded, error.message());
      case ErrorCode::kCircuitOpen:
        return Failed(ErrorCode::kCircuitOpen, reply::kCircuitOpen, error.message());
      case ErrorCode::kConnectFailed:
        service_series_->connect_failures->Add(w_.slot());
        return Failed(ErrorCode::kConnectFailed, reply::kUpstreamConnectFailed, error.message());
      case ErrorCode::kTlsFailed:
        service_series_->connect_failures->Add(w_.slot());
        return Failed(ErrorCode::kTlsFailed, reply::kUpstreamTlsFailed, error.message());
      case ErrorCode::kDeadlineExceeded:
        if (report_.try_timed_out) {
          return Failed(ErrorCode::kDeadlineExceeded, reply::kUpstreamTimeout, error.message());
        }
        return RouteTimedOut();
      case ErrorCode::kCancelled:
        return Failed(ErrorCode::kCancelled, {}, error.message());
      case ErrorCode::kUpstreamProtocol:
        return Failed(ErrorCode::kUpstreamProtocol, reply::kBadUpstreamResponse, error.message());
      default:
        return Failed(ErrorCode::kConnectionClosed, reply::kBadUpstreamResponse, error.message());
    }
  }

  // RFC 9112 3.2.2: an absolute-form target (`GET http://host/path`, what `curl -x` and other
  // forward-proxy clients send) is routed by its path, and its authority is the Host (any Host
  // line is replaced). The upstream gets the origin form. false: a scheme other than http(s),
  // an empty authority or one with userinfo (RFC 9110 4.2.4): the request gets 400.
  bool AdoptAbsoluteForm() {
    const std::string_view target = req_.target;
    const std::size_t scheme_end = target.find("://");
    const std::string_view scheme = target.substr(0, scheme_end);
    if (!http::EqualsIgnoreCase(scheme, "http") && !http::EqualsIgnoreCase(scheme, "https")) {
      return false;
    }
    const std::string_view rest = target.substr(scheme_end + 3);
    const std::size_t authority_end = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, authority_end);
    if (authority.empty() || authority.find('@') != std::string_view::npos) return false;
    std::string origin_form = authority_end == std::string_view::npos || rest[authority_end] == '?'
                                  ? std::string("/")
                                  : std::string();
    if (authority_end != std::string_view::npos) origin_form.append(rest.substr(authority_end));
    req_.headers.Set("host", authority);  // (a view into the target: set before it changes)
    req_.target = std::move(origin_form);
    return true;
  }

 public:
  // Routes, runs the chain, sends upstream and streams the answer back.
  Task<void> Proxy() {
    // Origin form ("/...") is the common case; "*" (OPTIONS) and other forms are left as they
    // are; a target with a scheme is the absolute form.
    if (!req_.target.empty() && req_.target[0] != '/' &&
        req_.target.find("://") != std::string::npos && !AdoptAbsoluteForm()) {
      Answer(ErrorCode::kInvalidArgument, reply::kBadRequest,
             "absolute-form target needs an http or https scheme and a host without userinfo");
      co_return co_await SendAnswer();
    }
    const auto route_index = listener_.routes.Match(req_);
    if (!route_index) {
      Answer(ErrorCode::kNotFound, reply::kNoRoute,
             fmt::format("no route for {} {}", req_.method, req_.path()));
      co_return co_await SendAnswer();
    }
    route_ = &listener_.routes.route(*route_index);
    const RoutePlan& route_plan = listener_.route_plans[*route_index];
    policy_ = route_plan.policy;
    route_series_ = &route_plan.series;
    chain_ = &route_plan.filters;  // from the snapshot this exchange keeps, for both directions
    if (route_plan.service == nullptr && route_->topic.empty()) {
      Answer(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
             "service " + route_->service + " is not available");
      co_return co_await SendAnswer();
    }
    if (route_plan.service != nullptr) {
      service_plan_ = route_plan.service;
      service_series_ = &service_plan_->series;
    }

    // A route's gRPC message limit, both ways (docs/grpc.md).
    if (grpc_ && route_->grpc && route_->grpc->max_message_bytes != 0) {
      request_meter_.emplace(route_->grpc->max_message_bytes);
      response_meter_.emplace(route_->grpc->max_message_bytes);
      client_body_.Meter(&*request_meter_);
    }
    // (The server took the hop-by-hop fields and Expect out of the head.)
    req_.target = routing::RouteTable::RewriteTarget(*route_, req_.target);
    const std::optional<std::uint64_t> body_size = request_.body_size();
    has_body_ = !body_size || *body_size > 0;
    if (chain_->body_limit() != 0 && has_body_) {
      if (!co_await BufferBody(chain_->body_limit())) co_return co_await UpstreamFailed();
    }
    // Only a certificate the TLS handshake verified names the caller (never a header).
    caller_.peer = request_.peer().identity;
    FilterContext context{req_,   *route_, request_.peer().ip, request_id_, body_,
                          reply_, clock_,  w_.slot(),          observers_,  caller_};
    for (const auto& filter : chain_->filters()) {
      // Deciding at once is the common case: no coroutine frame for it.
      Verdict verdict = filter->OnRequest(context);
      if (verdict == Verdict::kWait) {
        const WaitingFilter* waiting = filter->waiting();  // null: a bug, answered below
        if (waiting != nullptr) verdict = co_await waiting->Wait(context);
      }
      if (verdict == Verdict::kContinue) continue;
      const int status = reply_.status;
      if (verdict == Verdict::kReply && status >= 200 && status <= 599) {
        if (reply_.code.empty()) reply_.code.assign(filter->name());
        status_ = status;
      } else {
        Answer(ErrorCode::kInternal, reply::kInternal,
               fmt::format("filter {} gave no verdict or no reply status", filter->name()));
      }
      co_return co_await SendAnswer();
    }

    if (!route_->topic.empty()) co_return co_await StreamTopic();

    // The service's cluster as of now (a filter may have waited across a reload; one that
    // removed the service leaves the exchange without an upstream).
    ServiceState* service = w_.Service(route_->service);
    if (service == nullptr || !service->cluster) {
      Answer(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
             "service " + route_->service + " is not available");
      co_return co_await SendAnswer();
    }
    // A gRPC call of a method the route lists as idempotent may be retried (docs/grpc.md).
    const bool grpc_idempotent = GrpcIdempotent();
    // A body small enough to be sent again is read whole first (a larger or chunked one
    // streams, and its request is not retried once a byte of it went).
    if (has_body_ && !body_buffered_ && body_size &&
        *body_size <= policy_->retry.replay_body_bytes &&
        (policy_->retry.attempts > 1 || policy_->hedge)) {
      if (!co_await BufferBody(*body_size)) co_return co_await UpstreamFailed();
    } else if (grpc_idempotent && has_body_ && !body_buffered_ && !body_size &&
               policy_->retry.attempts > 1) {
      // gRPC declares no length: the call's body is read up to replay_body_bytes.
      if (!co_await BufferForReplay(policy_->retry.replay_body_bytes)) {
        co_return co_await UpstreamFailed();
      }
    }
    PrepareUpstreamRequest();
    const TimePoint deadline = Deadline();
    resilience::RequestFacts facts;
    const bool has_key = req_.headers.Has("idempotency-key");
    facts.idempotent = resilience::IsIdempotent(method_, has_key);
    facts.key_honoured = has_key && route_->retry_with_idempotency_key;
    if (grpc_idempotent) {
      facts.idempotent = true;
      facts.grpc = true;
    }
    resilience::Client client(*service->cluster, *service_plan_->state, *policy_, clock_,
                              w_.random(), w_.notices(), service_series_->resilience, w_.slot());
    const Result<void> got =
        co_await client.Send(upstream_, facts, deadline, response_in_, report_);
    AfterSend();
    if (upstream_.keepalive_retries > 0) {
      service_series_->keepalive_race_retries->Add(w_.slot(), upstream_.keepalive_retries);
    }
    if (!got) {
      SendFailed(got.error());
      co_return co_await UpstreamFailed();
    }
    if (response_in_.status == 101) co_return co_await SwitchProtocols();
    co_await StreamResponse();
  }

  // --- upstream::InterimSink: an interim response (103 Early Hints, 100 Continue) ahead of the
  // final one. The server forwards it to HTTP/1.1 clients (RFC 9110 15.2), not to HTTP/1.0 ones
  // nor a 100 after its own 100 Continue.
  Task<bool> OnInterim(int status, std::string_view reason, const http::Headers& headers) override {
    interim_reason_.assign(reason);
    interim_head_.status = status;
    interim_head_.reason = interim_reason_;
    interim_head_.headers = headers;
    http::RemoveHopByHop(interim_head_.headers);
    const bool sent = co_await response_.WriteInterim(interim_head_);
    co_return sent;
  }

 private:
  // The upstream request: the client's head, lent as it is (Send frames it in place), its body as
  // the chain left it, the hash key, this runner for 1xx.
  void PrepareUpstreamRequest() {
    upstream_.head = &req_;
    if (!request_.upgrade().empty()) {
      // The client's upgrade goes on (the server took its hop-by-hop fields out of the head):
      // the one case they pass, as a new pair for this hop.
      req_.headers.Set("connection", "upgrade");
      req_.headers.Set("upgrade", request_.upgrade());
    }
    if (body_buffered_) {
      // The whole body is here: it goes upstream with its length (its trailers after it, to an
      // HTTP/2 upstream), and can be sent again after the keep-alive race.
      buffered_body_ = BufferedBody(body_, &request_);
      upstream_.body = &buffered_body_;
      bytes_received_ = body_.size();
    } else if (has_body_ ||
               (method_ != "GET" && method_ != "HEAD" && req_.headers.Has("content-length"))) {
      upstream_.body = &client_body_;  // (a declared empty body keeps its content-length: 0)
    }
    upstream_.interim = this;
    const config::Service& service = *service_plan_->config;
    if (service.lb == config::LbPolicy::kHash) {
      std::string_view key = request_.peer().ip;
      if (service.hash_on.kind == config::HashOn::Kind::kHeader) {
        key = req_.headers.Get(service.hash_on.header).value_or("");
      }
      upstream_.hash_key = upstream::HashKey(key);
    }
    upstream_start_ = clock_.now();
    service_series_->in_flight->Add(w_.slot(), 1);
    sent_ = true;
  }
  // The request's total deadline: the route's timeout from when the upstream half started, or
  // what a trusted caller said is left (x-ferry-deadline-ms, kept by the forwarding filter only
  // from trusted networks), from when the request came, whichever ends first.
  TimePoint Deadline() {
    TimePoint deadline = CallerDeadline();
    if (grpc_) deadline = GrpcDeadline(deadline);
    return deadline;
  }
  // A gRPC call's deadline is also its grpc-timeout (from when the request came), and the
  // upstream is told the time left of the nearest one as its own grpc-timeout. A malformed
  // grpc-timeout is not a deadline (and goes on as it came).
  TimePoint GrpcDeadline(TimePoint deadline) {
    if (const auto header = req_.headers.Get("grpc-timeout")) {
      if (const auto timeout = grpc::ParseTimeout(*header)) {
        const TimePoint theirs = start_ + *timeout;
        if (theirs < deadline) {
          deadline = theirs;
          timeout_ = std::chrono::duration_cast<Duration>(*timeout);
          grpc_deadline_ = true;
          caller_deadline_ = false;
        }
      } else {
        return deadline;
      }
    }
    if (deadline != TimePoint::max()) {
      const auto left = std::max(deadline - clock_.now(), TimePoint::duration(1));
      req_.headers.Set(
          "grpc-timeout",
          grpc::FormatTimeout(std::chrono::duration_cast<std::chrono::nanoseconds>(left)));
    }
    return deadline;
  }
  // The route's timeout, or a trusted caller's x-ferry-deadline-ms when it is nearer.
  TimePoint CallerDeadline() {
    timeout_ = route_->timeout;
    TimePoint deadline =
        route_->timeout.count() > 0 ? upstream_start_ + route_->timeout : TimePoint::max();
    const auto header = req_.headers.Get(resilience::kDeadlineHeader);
    if (!header) return deadline;
    std::uint64_t ms = 0;
    const auto [end, ec] = std::from_chars(header->data(), header->data() + header->size(), ms);
    if (ec != std::errc() || end != header->data() + header->size()) {
      req_.headers.Remove(resilience::kDeadlineHeader);  // not a number: ignored
      return deadline;
    }
    ms = std::min<std::uint64_t>(ms, 24ull * 3600 * 1000);
    const TimePoint theirs = start_ + std::chrono::milliseconds(ms);
    if (theirs < deadline) {
      deadline = theirs;
      timeout_ = std::chrono::milliseconds(ms);
      caller_deadline_ = true;
    }
    return deadline;
  }

  // What Send says it did.
  void AfterSend() {
    endpoint_ = upstream_.endpoint;
    if (!body_buffered_) bytes_received_ = client_body_.bytes();
  }

  void FilterBodyTooLarge(std::uint64_t bytes) {
    const bool known = request_.body_size().has_value();
    Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
           fmt::format("request body of {}{} bytes exceeds the {} bytes filter {} reads",
                       known ? "" : "over ", known ? bytes : chain_->body_limit(),
                       chain_->body_limit(), chain_->body_reader()->name()));
  }

  // Reads the whole request body into body_, for the chain's filters that read it
  // (FilterChain::body_limit); false (with failure_ set) if it is too long, malformed or does
  // not come.
  Task<bool> BufferBody(std::uint64_t limit) {
    if (const auto size = request_.body_size()) {
      if (*size > limit) {
        FilterBodyTooLarge(*size);
        co_return false;
      }
      body_.reserve(*size);
    }
    for (;;) {
      auto piece = co_await request_.ReadSome();
      if (!piece) {
        BodyReadFailed(piece.error());
        co_return false;
      }
      if (piece->empty()) break;
      for (std::string_view p : *piece) body_.append(p);
      if (body_.size() > limit) {
        FilterBodyTooLarge(body_.size());
        co_return false;
      }
    }
    if (request_meter_ && request_meter_->Feed(body_)) {
      Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
             fmt::format("a gRPC request message of {} bytes exceeds the route's "
                         "grpc.max_message_bytes of {}",
                         request_meter_->declared(), request_meter_->max()));
      co_return false;
    }
    body_buffered_ = true;
    co_return true;
  }

  // The request is a gRPC call of a method in the route's grpc.idempotent list.
  bool GrpcIdempotent() const {
    if (!grpc_ || !route_->grpc || route_->grpc->idempotent.empty()) {
      return false;
    }
    const std::string_view target = original_target_;
    const std::string_view path = target.substr(0, target.find('?'));
    for (const std::string& method : route_->grpc->idempotent) {
      if (method == path) return true;
    }
    return false;
  }

  // Reads a body of undeclared length whole, up to `limit`, so a retry can send it again; a
  // longer one streams on (the bytes read so far first) and is not retried. false (failure_
  // set): the body could not be read, or a gRPC message in it is over the route's limit.
  Task<bool> BufferForReplay(std::uint64_t limit) {
    std::string read;
    bool whole = false;
    for (;;) {
      auto piece = co_await request_.ReadSome();
      if (!piece) {
        BodyReadFailed(piece.error());
        co_return false;
      }
      if (piece->empty()) {
        whole = true;
        break;
      }
      for (std::string_view p : *piece) read.append(p);
      if (read.size() > limit) break;
    }
    if (request_meter_ && request_meter_->Feed(read)) {
      Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
             fmt::format("a gRPC request message of {} bytes exceeds the route's "
                         "grpc.max_message_bytes of {}",
                         request_meter_->declared(), request_meter_->max()));
      co_return false;
    }
    if (whole) {
      body_ = std::move(read);
      body_buffered_ = true;
    } else {
      client_body_.Prepend(std::move(read));
    }
    co_return true;
  }

  // Answers what went wrong before the response started (failure_).
  Task<void> UpstreamFailed() {
    if (!failure_ || failure_->code() == ErrorCode::kCancelled) co_return;  // no one to tell
    if (failure_->code() == ErrorCode::kDeadlineExceeded) {
      service_series_->timeouts->Add(w_.slot());
    }
    Answer(failure_->code(), failure_code_, failure_->message());
    if (failure_->code() == ErrorCode::kCircuitOpen && report_.retry_after.count() > 0) {
      // When the breaker will let a trial through (whole seconds, rounded up).
      const auto seconds = std::chrono::ceil<std::chrono::seconds>(report_.retry_after).count();
      char digits[24];
      const auto end = std::to_chars(digits, digits + sizeof(digits), seconds).ptr;
      reply_.headers.Add("retry-after", std::string_view(digits, end - digits));
    }
    co_await SendAnswer();
  }

  // The length the client is told for the upstream's response: its Content-Length, none for a
  // streamed body (the server then chunks it, or reads until close to HTTP/1.0).
  std::optional<std::uint64_t> ResponseBodySize(const http::ResponseHead& resp) const {
    const bool no_body = method_ == "HEAD" || resp.status == 204 || resp.status == 304;
    if (!no_body) return response_in_.body.length();
    // No body: a HEAD response or a 204/304 keeps the length it declared.
    if (auto declared = resp.headers.Get("content-length")) {
      std::uint64_t value = 0;
      const auto [end, ec] =
          std::from_chars(declared->data(), declared->data() + declared->size(), value);
      if (ec == std::errc() && end == declared->data() + declared->size()) return value;
    }
    if (method_ == "HEAD") return std::nullopt;
    return 0;
  }

  Task<void> StreamResponse() {
    http::ResponseHead& resp = response_head_;
    resp.status = response_in_.status;
    resp.reason = std::move(response_in_.reason);
    resp.headers = std::move(response_in_.headers);  // (all three are this exchange's own)
    const std::optional<std::uint64_t> length = response_in_.body.length();
    resp.framing = length ? http::BodyFraming::kContentLength : http::BodyFraming::kChunked;
    resp.content_length = length.value_or(0);
    status_ = resp.status;
    upstream_status_ = resp.status;
    FilterContext context{req_,   *route_, request_.peer().ip, request_id_, body_,
                          reply_, clock_,  w_.slot(),          observers_,  caller_};
    const auto& filters = chain_->filters();
    for (auto it = filters.rbegin(); it != filters.rend(); ++it) (*it)->OnResponse(context, resp);

    http::RemoveHopByHop(resp.headers);
    const std::optional<std::uint64_t> size = ResponseBodySize(resp);
    // The server writes the length (a 204 or 304 keeps the one the upstream sent).
    if (resp.status != 204 && resp.status != 304) resp.headers.Remove("content-length");
    out_head_.status = resp.status;
    out_head_.reason = resp.reason;
    out_head_.headers = std::move(resp.headers);
    if (grpc_) grpc_status_ = grpc::StatusOf(&out_head_.headers);  // Trailers-Only
    response_.WriteHead(out_head_, size);  // goes out with the first body bytes
    for (auto& observer : observers_) observer->OnHead(out_head_.status, out_head_.headers);

    // The body piece by piece as it arrives, never whole; the connection goes back to its pool
    // when the body reader reaches the end.
    for (;;) {
      // What is buffered already comes without a coroutine frame (a small body usually came
      // with its head); only a read from the upstream suspends.
      Result<std::string_view> piece = std::string_view();
      if (auto ready = response_in_.body.TryReadSome()) {
        piece = *ready;
      } else {
        piece = co_await response_in_.body.ReadSome();
      }
      if (!piece) {
        // The response already started: all we can do is cut it.
        const ErrorCode code = piece.error().code();
        if (code == ErrorCode::kDeadlineExceeded) {
          service_series_->timeouts->Add(w_.slot());
          CutShort("upstream_timeout", "upstream timed out");
        } else if (code == ErrorCode::kUpstreamProtocol) {
          CutShort("upstream_malformed", piece.error().message());
        } else {
          CutShort("upstream_closed", "upstream prematurely closed connection");
        }
        response_.Abort();
        co_return;
      }
      if (piece->empty()) break;
      std::string_view bytes = *piece;
      if (response_meter_) {
        if (const auto over = response_meter_->Feed(bytes)) {
          co_return co_await EndTooLarge(bytes.substr(0, *over));
        }
      }
      if (!observers_.empty()) {
        for (auto& observer : observers_) observer->OnBody(bytes);
        if (length && bytes_sent_ + bytes.size() >= *length) co_await EndObservers(0);
      }
      const std::span<const std::string_view> pieces(&bytes, 1);
      const bool written = co_await response_.WriteBody(pieces);
      if (!written) co_return;  // the client is gone: the reader, dropped, closes the upstream
      bytes_sent_ += bytes.size();
    }
    if (!observers_.empty()) co_await EndObservers(0);
    // The upstream's trailers (gRPC's status) end the response; without any, the server ends
    // it (a chunked body's last chunk, or a head still waiting).
    if (const http::Headers* trailers = response_in_.body.trailers()) {
      if (grpc_) grpc_status_ = grpc::StatusOf(trailers);
      co_await response_.FinishWithTrailers(*trailers);
    }
  }

  // A gRPC response message over the route's max_message_bytes: the messages before it go, then
  // the call ends with RESOURCE_EXHAUSTED in its trailers (the upstream stream is reset).
  Task<void> EndTooLarge(std::string_view before) {
    if (!before.empty()) {
      const std::span<const std::string_view> pieces(&before, 1);
      if (!co_await response_.WriteBody(pieces)) co_return;
      bytes_sent_ += before.size();
    }
    CutShort("grpc_message_too_large",
             fmt::format("a gRPC response message of {} bytes exceeds grpc.max_message_bytes {}",
                         response_meter_->declared(), response_meter_->max()));
    grpc_status_ = grpc::kResourceExhausted;
    http::Headers trailers;
    trailers.Add("grpc-status", "8");
    trailers.Add("grpc-message", grpc::PercentEncode(fmt::format(
                                     "response message of {} bytes exceeds the limit of {}",
                                     response_meter_->declared(), response_meter_->max())));
    co_await response_.FinishWithTrailers(trailers);
  }

  // A 101 from the upstream: checks it answers the upgrade the client asked for, sends the 101
  // on, and relays bytes both ways until either side ends the tunnel. The upstream connection
  // is taken out of its exchange here (BodyReader::TakeUpgraded) and closed with it, never
  // pooled. The route's stream_idle_timeout and max_stream_duration bound it, not its timeout.
  Task<void> SwitchProtocols() {
    upstream_status_ = 101;
    const std::string_view asked = request_.upgrade();
    if (asked.empty()) {
      Failed(ErrorCode::kUpstreamProtocol, reply::kBadUpstreamResponse,
             fmt::format("upstream {} answered 101 to a request that asked for no upgrade",
                         endpoint_ ? endpoint_->id : std::string()));
      co_return co_await UpstreamFailed();
    }
    if (http::EqualsIgnoreCase(asked, "websocket")) {
      const std::string expected =
          WebSocketAccept(req_.headers.Get("sec-websocket-key").value_or(""));
      const auto accept = response_in_.headers.Get("sec-websocket-accept");
      if (!accept || *accept != expected) {
        Failed(ErrorCode::kUpstreamProtocol, reply::kBadUpstreamResponse,
               fmt::format("upstream {} answered the WebSocket handshake with a wrong "
                           "Sec-WebSocket-Accept",
                           endpoint_ ? endpoint_->id : std::string()));
        co_return co_await UpstreamFailed();
      }
    }
    status_ = 101;
    http::ResponseHead& resp = response_head_;
    resp.status = 101;
    resp.headers = std::move(response_in_.headers);
    FilterContext context{req_,   *route_, request_.peer().ip, request_id_, body_,
                          reply_, clock_,  w_.slot(),          observers_,  caller_};
    const auto& filters = chain_->filters();
    for (auto it = filters.rbegin(); it != filters.rend(); ++it) (*it)->OnResponse(context, resp);
    http::RemoveHopByHop(resp.headers);  // the server writes its own Connection and Upgrade
    out_head_.status = 101;
    out_head_.headers = std::move(resp.headers);
    const upstream::Upgraded upstream_side = response_in_.body.TakeUpgraded();
    if (upstream_side.stream == nullptr) {
      Failed(ErrorCode::kUpstreamProtocol, reply::kBadUpstreamResponse,
             "the upstream's 101 came without its connection");
      co_return co_await UpstreamFailed();
    }
    const server::Upgraded client_side = co_await response_.SwitchProtocols(out_head_);
    if (client_side.stream == nullptr) co_return;  // the client went
    route_series_->websocket_total->Add(w_.slot());
    route_series_->websocket_active->Add(w_.slot(), 1);
    TunnelLimits limits;
    limits.idle = route_->stream_idle_timeout;
    limits.max_duration = route_->max_stream_duration;
    const TunnelResult relayed = co_await RelayTunnel(
        *client_side.stream, client_side.early, *upstream_side.stream, upstream_side.early, limits);
    route_series_->websocket_active->Add(w_.slot(), -1);
    bytes_received_ = relayed.to_upstream;
    bytes_sent_ = relayed.to_client;
    if (relayed.idle_timed_out) {
      cut_short_ = "stream_idle_timeout";
    } else if (relayed.max_duration_reached) {
      cut_short_ = "max_stream_duration";
    }
  }

  // A topic route: the topic's events to the client (topic_stream.hpp), after the chain ran.
  // The stream closes at the verified JWT's exp.
  Task<void> StreamTopic() {
    TopicStreamArgs args{w_,
                         *route_,
                         *route_series_,
                         request_,
                         response_,
                         TokenExpiry(),
                         [this](int status, http::Headers& headers) {
                           http::ResponseHead resp;
                           resp.status = status;
                           resp.headers = std::move(headers);
                           FilterContext context{
                               req_,   *route_, request_.peer().ip, request_id_, body_,
                               reply_, clock_,  w_.slot(),          observers_,  caller_};
                           const auto& filters = chain_->filters();
                           for (auto it = filters.rbegin(); it != filters.rend(); ++it) {
                             (*it)->OnResponse(context, resp);
                           }
                           headers = std::move(resp.headers);
                         }};
    const TopicStreamResult streamed = co_await ServeTopic(args);
    if (streamed.error) {
      Answer(streamed.error->code(), streamed.error_code, streamed.error->message());
      co_return co_await SendAnswer();
    }
    status_ = streamed.status;
    bytes_sent_ = streamed.bytes_sent;
    cut_short_ = streamed.ended;
  }
  std::optional<std::chrono::system_clock::time_point> TokenExpiry() const {
    if (!caller_.jwt) return std::nullopt;
    for (const auto& [name, value] : caller_.claims) {
      if (name != "exp") continue;
      std::int64_t seconds = 0;
      const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
      if (ec == std::errc())
        return std::chrono::system_clock::time_point(std::chrono::seconds(seconds));
    }
    return std::nullopt;
  }

  // Ends the filters' observers (filter_wait.hpp), once: local_status 0 for a whole upstream
  // response, else the status of the local reply about to go out.
  Task<void> EndObservers(int local_status) {
    auto observers = std::move(observers_);
    observers_.clear();
    for (auto& observer : observers) {
      if (local_status == 0) {
        co_await observer->OnComplete();
      } else {
        co_await observer->OnLocalReply(local_status);
      }
    }
  }

  // ferry_grpc_calls_total: the call's method and how it ended.
  void CountGrpcCall() {
    const std::string_view method =
        std::string_view(original_target_).substr(0, original_target_.find('?'));
    char digits[8];
    std::string_view status = "none";
    if (grpc_status_ >= 0) {
      const auto end = std::to_chars(digits, digits + sizeof(digits), grpc_status_).ptr;
      status = std::string_view(digits, static_cast<std::size_t>(end - digits));
    }
    w_.GrpcCallCounter(listener_.config->name,
                       route_ != nullptr ? std::string_view(route_->name) : std::string_view(),
                       method, status)
        .Add(w_.slot());
  }

  // The response was cut short by the upstream after its head went to the client (nginx's
  // "upstream prematurely closed connection"): the client saw a status, so the access log keeps
  // it and carries `mark`, and the error log says what happened.
  void CutShort(std::string_view mark, std::string_view why) {
    cut_short_ = mark;
    spdlog::error(
        "{} while sending the response: {} {} from {} (service {}, {} body bytes sent, "
        "request_id {})",
        why, method_, original_target_, endpoint_ ? endpoint_->id : std::string(), route_->service,
        bytes_sent_, request_id_);
  }

 public:
  // Logs and counts the exchange (a plain call).
  void Finish() {
    response_in_.body = upstream::BodyReader();  // an unfinished body closes its connection
    const auto end = clock_.now();
    if (sent_) {
      service_series_->in_flight->Add(w_.slot(), -1);
      if (upstream_status_ != 0) {
        service_series_->requests[StatusClass(upstream_status_)]->Add(w_.slot());
        service_series_->duration->Observe(
            w_.slot(), std::chrono::duration<double>(end - upstream_start_).count());
      }
    }
    if (grpc_) CountGrpcCall();
    if (route_series_ != nullptr && status_ != 0) {
      route_series_->requests[StatusClass(status_)]->Add(w_.slot());
      route_series_->duration->Observe(w_.slot(),
                                       std::chrono::duration<double>(end - start_).count());
    }
    if (auto* log = w_.access_log()) {
      observability::AccessLogEntry e;
      e.time = wall_start_;
      e.method = method_;
      e.path = original_target_;
      e.status = status_;
      e.bytes_received = bytes_received_;
      e.bytes_sent = bytes_sent_;
      e.duration = end - start_;
      e.upstream = endpoint_ ? std::string_view(endpoint_->id) : std::string_view();
      e.request_id = request_id_;
      e.listener = listener_.config->name;
      e.route = route_ ? std::string_view(route_->name) : std::string_view();
      e.client = request_.peer().address;
      e.error = cut_short_;
      log->Write(e);
    }
  }

 private:
  WorkerState& w_;
  const Clock& clock_;
  std::shared_ptr<const Snapshot> snapshot_;  // keeps every plan below (and chain_) alive
  const ListenerPlan& listener_;
  server::Request& request_;
  server::Response& response_;
  http::RequestHead& req_;  // the request's head, as it will be sent upstream
  const config::Route* route_ = nullptr;
  const FilterChain* chain_ = nullptr;  // the route's, in snapshot_
  const RouteSeries* route_series_ = nullptr;
  const ServicePlan* service_plan_ = nullptr;  // in snapshot_
  const config::Policy* policy_ = nullptr;     // the route's, in snapshot_
  resilience::SendReport report_;              // what the tries came to
  const ServiceSeries* service_series_ = nullptr;
  ClientBody client_body_;
  BufferedBody buffered_body_{std::string_view(), nullptr};
  upstream::Request upstream_;                          // what Cluster::Send sends
  upstream::Response response_in_;                      // what it got back
  std::shared_ptr<const upstream::Endpoint> endpoint_;  // the endpoint picked (access log)
  http::ResponseHead response_head_;   // the upstream's head, as the response filters see it
  server::ResponseHead out_head_;      // the response head to the client
  server::ResponseHead interim_head_;  // a 1xx response on its way to the client
  std::string interim_reason_;
  LocalReply reply_;  // a local reply (a filter's or Ferry's error), and its head
  server::ResponseHead reply_head_;
  std::string request_id_;
  std::string reply_message_;
  std::optional<grpc::MessageMeter> request_meter_;  // a route's grpc.max_message_bytes
  std::optional<grpc::MessageMeter>
      response_meter_;  // the message of Ferry's own reply (Answer), for grpc-message
  std::string method_;
  std::string original_target_;
  std::string body_;  // the whole request body when the chain reads it (body_buffered_)
  std::vector<std::unique_ptr<ResponseObserver>> observers_;  // the chain's (filter_wait.hpp)
  CallerIdentity caller_;                                     // who the filters found is calling
  std::optional<Error> failure_;   // why the exchange could not go on (UpstreamFailed)
  std::string_view failure_code_;  // its JSON code
  TimePoint start_{};
  TimePoint upstream_start_{};
  Duration timeout_{};  // the one that bounds the upstream half (route's or caller's)
  std::chrono::system_clock::time_point wall_start_{};
  std::uint64_t bytes_received_ = 0;
  std::uint64_t bytes_sent_ = 0;
  int status_ = 0;
  int upstream_status_ = 0;
  std::string_view cut_short_;  // the access log's "error" mark (CutShort); empty if none
  bool has_body_ = false;       // the request has a body (declared, or chunked)
  bool body_buffered_ = false;
  bool sent_ = false;             // handed to the cluster (counted in flight)
  bool caller_deadline_ = false;  // the caller's x-ferry-deadline-ms is the tighter one
  bool grpc_deadline_ = false;    // the gRPC call's grpc-timeout is the tightest
  bool grpc_ = false;             // a gRPC call (grpc::IsGrpc)
  int grpc_status_ = -1;          // how it ended (-1: no grpc-status seen)
};

Task<void> ListenerHandler::Serve(server::Request& request, server::Response& response) {
  // The snapshot is taken when a request starts, so a reload applies from the next request on
  // every connection, and the exchange keeps the one it started with.
  std::shared_ptr<const Snapshot> snapshot = worker_.snapshot();
  auto listener = snapshot->listeners.find(listener_);
  if (listener == snapshot->listeners.end()) {  // removed by a reload: the connection ends
    response.Abort();
    co_return;
  }
  ExchangeRunner runner(worker_, std::move(snapshot), listener->second, request, response);
  runner.Start();
  co_await runner.Proxy();
  runner.Finish();
}

}  // namespace ferry::proxy
