// One proxied request/response exchange, as the server's handler: route, the route's filters,
// pick an endpoint, send the request (streaming its body from the server's Request), read the
// response (streaming its body back through the server's Response), log and count it.
// What goes wrong before the response starts is a ferry::Error whose code's HTTP status
// (core/error.cpp) is the status of the JSON reply.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <boost/container/small_vector.hpp>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "http/head_scanner.hpp"
#include "http/parser.hpp"
#include "http/serializer.hpp"
#include "proxy/filter_wait.hpp"
#include "proxy/listener_handler.hpp"
#include "proxy/local_reply.hpp"
#include "runtime/deadline.hpp"
#include "runtime/read_buffer.hpp"

namespace ferry::proxy {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

// Upstream heads are bounded like client heads; an upstream that sends more is broken.
constexpr http::HeadLimits kUpstreamHeadLimits{64 * 1024, 256};

// A gather list for one write: an optional head, body chunks, and chunked framing around them.
class WriteList {
 public:
  void Head(std::string_view head) {
    if (!head.empty()) bufs_.emplace_back(head.data(), head.size());
  }
  // A whole body, buffered (not chunked: its length is known).
  void Body(std::string_view body) {
    if (body.empty()) return;
    bufs_.emplace_back(body.data(), body.size());
    body_bytes_ += body.size();
  }
  // Adds body chunks; with `chunked` they go out as one chunk whose size line is kept here.
  void Body(std::span<const std::string_view> chunks, bool chunked) {
    std::size_t total = 0;
    for (std::string_view c : chunks) total += c.size();
    if (total == 0) return;
    if (chunked) {
      size_line_.clear();
      http::AppendChunkSize(size_line_, total);
      bufs_.emplace_back(size_line_.data(), size_line_.size());
    }
    for (std::string_view c : chunks) {
      if (!c.empty()) bufs_.emplace_back(c.data(), c.size());
    }
    if (chunked) bufs_.emplace_back(http::kCrlf.data(), http::kCrlf.size());
    body_bytes_ += total;
  }
  void LastChunk() { bufs_.emplace_back(http::kLastChunk.data(), http::kLastChunk.size()); }
  // A view, so the write operation copies two words rather than the list.
  std::span<const asio::const_buffer> buffers() const { return {bufs_.data(), bufs_.size()}; }
  bool empty() const { return bufs_.empty(); }
  std::uint64_t body_bytes() const { return body_bytes_; }
  void Clear() {
    bufs_.clear();
    body_bytes_ = 0;
  }

 private:
  boost::container::small_vector<asio::const_buffer, 8> bufs_;  // no allocation in the usual case
  std::string size_line_;
  std::uint64_t body_bytes_ = 0;
};

}  // namespace

// The state of one exchange, so each phase can be its own small coroutine.
class ExchangeRunner {
 public:
  ExchangeRunner(WorkerState& worker, std::shared_ptr<const Snapshot> snapshot,
                 const ListenerPlan& listener, server::Request& request,
                 server::Response& response)
      : w_(worker),
        clock_(w_.clock()),
        snapshot_(std::move(snapshot)),
        listener_(listener),
        request_(request),
        response_(response),
        req_(request.head()),
        upstream_in_(w_.buffers()),
        response_parser_(http::Parser::Kind::kResponse) {}

  // The exchange's start (a plain call); then Proxy, then Finish.
  void Start() {
    start_ = clock_.now();
    wall_start_ = clock_.wall();
    method_ = req_.method;
    original_target_ = req_.target;
    if (auto id = req_.headers.Get("x-request-id"); id && !id->empty() && id->size() <= 200) {
      request_id_ = std::string(*id);
    } else {
      request_id_ = w_.NewRequestId();
    }
  }

 private:
  enum class SendResult { kSent, kRetry, kFailed };

  // Prepares the JSON error reply (a plain call: GCC 12 miscompiles temporaries with
  // destructors inside co_await expressions, so none are built there); its status is the
  // table's for `error`.
  void Answer(ErrorCode error, std::string_view code, std::string message) {
    status_ = Describe(error).http_status;
    MakeErrorReply(reply_, Error(error, std::move(message)), code, request_id_);
  }
  // Sends the prepared reply (reply_, which a filter may have made). The server closes the
  // connection after it if the request's body was not read.
  Task<void> SendAnswer() {
    if (response_.head_written()) {  // too late for a reply: cut the connection
      response_.Abort();
      co_return;
    }
    w_.LocalReplyCounter(reply_.code).Add(w_.slot());
    MakeReplyHead(reply_, request_id_, reply_head_);
    co_await response_.Send(reply_head_, reply_.body);
  }
  // Records why the exchange cannot go on (UpstreamFailed answers it).
  SendResult Failed(ErrorCode error, std::string_view code, std::string message) {
    failure_.emplace(error, std::move(message));
    failure_code_ = code;
    return SendResult::kFailed;
  }
  // The client went away: there is no one to answer.
  SendResult ClientGone() { return Failed(ErrorCode::kCancelled, {}, "the client went away"); }
  // Reading the request body failed (the server's Request says why).
  SendResult BodyReadFailed(const Error& error) {
    switch (error.code()) {
      case ErrorCode::kResourceExhausted:
        return Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge, error.message());
      case ErrorCode::kInvalidArgument:
        return Failed(ErrorCode::kInvalidArgument, reply::kBadRequest, error.message());
      case ErrorCode::kDeadlineExceeded:
        return Failed(ErrorCode::kRequestTimeout, reply::kRequestTimeout,
                      "request not received within request_timeout");
      default:
        return ClientGone();
    }
  }
  // An upstream read or write failed: a timeout if the route's deadline passed, else `message`.
  SendResult UpstreamIoFailed(std::string message) {
    if (upstream_deadline_ && upstream_deadline_->expired()) return RouteTimedOut();
    return Failed(ErrorCode::kConnectionClosed, reply::kBadUpstreamResponse, std::move(message));
  }
  SendResult RouteTimedOut() {
    return Failed(ErrorCode::kDeadlineExceeded, reply::kUpstreamTimeout,
                  fmt::format("upstream {} did not answer within {}", route_->service,
                              FormatDuration(route_->timeout)));
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
    route_series_ = &route_plan.series;
    chain_ = &route_plan.filters;  // from the snapshot this exchange keeps, for both directions
    service_ = w_.Service(route_->service);
    if (route_plan.service == nullptr || service_ == nullptr) {
      Answer(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
             "service " + route_->service + " is not available");
      co_return co_await SendAnswer();
    }
    service_series_ = &route_plan.service->series;

    // (The server took the hop-by-hop fields and Expect out of the head.)
    req_.target = routing::RouteTable::RewriteTarget(*route_, req_.target);
    const std::optional<std::uint64_t> body_size = request_.body_size();
    has_body_ = !body_size || *body_size > 0;
    chunked_in_ = !body_size;
    if (chain_->body_limit() != 0 && has_body_) {
      if (!co_await BufferBody()) co_return co_await UpstreamFailed();
    }
    FilterContext context{req_, *route_, request_.peer().ip, request_id_, body_, reply_, clock_};
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

    if (!PickEndpoint()) {
      Answer(ErrorCode::kUnavailable, reply::kNoHealthyEndpoint,
             "no healthy endpoint for service " + route_->service);
      co_return co_await SendAnswer();
    }

    if (body_buffered_ && chunked_in_) {
      // The whole body is here: it goes upstream with its length (any trailer is dropped).
      chunked_in_ = false;
      req_.headers.Set("content-length", std::to_string(body_.size()));
    }
    if (chunked_in_) req_.headers.Add("transfer-encoding", "chunked");
    http::AppendRequestHead(upstream_head_, req_.method, req_.target, req_.headers);
    if (req_.method == "HEAD") response_parser_.ExpectNoBody();

    for (int attempt = 0; attempt < 2; ++attempt) {
      // (No co_await inside a conditional expression: GCC 12 miscompiles it.)
      auto conn = co_await endpoint_->pool.Acquire(/*fresh_only=*/attempt > 0);
      if (!conn) {
        service_series_->connect_failures->Add(w_.slot());
        // The pool's own limit (resource_exhausted) is, to the client, an upstream that is
        // unavailable for now; any other failure to connect is connect_failed.
        if (conn.error().code() == ErrorCode::kResourceExhausted) {
          Answer(ErrorCode::kUnavailable, reply::kUpstreamOverloaded, conn.error().message());
          co_return co_await SendAnswer();
        }
        Answer(ErrorCode::kConnectFailed, reply::kUpstreamConnectFailed, conn.error().message());
        co_return co_await SendAnswer();
      }
      conn_ = std::move(*conn);
      upstream_deadline_.emplace(w_.io(), conn_->socket);
      if (!upstream_started_) {
        upstream_started_ = true;
        upstream_start_ = clock_.now();
        upstream_deadline_->Arm(route_->timeout);
      } else if (route_->timeout.count() > 0) {
        // The retry gets what is left of the route's budget; none left is a timeout now.
        const Duration left = route_->timeout - (clock_.now() - upstream_start_);
        if (left.count() <= 0) {
          RouteTimedOut();
          co_return co_await UpstreamFailed();
        }
        upstream_deadline_->Arm(left);
      }
      const SendResult sent = co_await SendRequest();
      if (sent == SendResult::kSent) {
        const SendResult head = co_await ReadResponseHead();
        if (head == SendResult::kSent) break;
        if (head == SendResult::kFailed) co_return co_await UpstreamFailed();
      } else if (sent == SendResult::kFailed) {
        co_return co_await UpstreamFailed();
      }
      // The pooled connection was closed under us before any response byte: the one retry
      // that is always safe, on a fresh connection.
      service_series_->keepalive_race_retries->Add(w_.slot());
      DropConnection();
      if (attempt == 1) {
        UpstreamIoFailed("upstream closed the connection without responding");
        co_return co_await UpstreamFailed();
      }
    }
    co_await StreamResponse();
  }

 private:
  bool PickEndpoint() {
    if (service_->endpoints.empty() || !service_->lb) return false;
    upstream::PickContext pick;
    const config::Service& cfg = *service_->plan->config;
    if (cfg.lb == config::LbPolicy::kLeastRequest) {
      for (std::size_t i = 0; i < service_->endpoints.size(); ++i) {
        service_->load[i].in_flight = service_->endpoints[i]->in_flight;
      }
      pick.endpoints = service_->load;
    } else if (cfg.lb == config::LbPolicy::kHash) {
      std::string_view key = request_.peer().ip;
      if (cfg.hash_on.kind == config::HashOn::Kind::kHeader) {
        key = req_.headers.Get(cfg.hash_on.header).value_or("");
      }
      pick.hash_key = upstream::HashKey(key);
    }
    const auto index = service_->lb->Pick(pick);
    if (!index) return false;
    endpoint_ = service_->endpoints[*index];
    ++endpoint_->in_flight;
    service_series_->in_flight->Add(w_.slot(), 1);
    return true;
  }

  // Writes what `out` gathered to the upstream. kRetry: the connection was a reused one that
  // failed before anything could have reached the upstream, and the request can be replayed.
  Task<SendResult> WriteUpstream(const WriteList& out) {
    auto [ec, written] = co_await asio::async_write(conn_->socket, out.buffers(), kNoThrow);
    if (ec) {
      const bool replayable = !has_body_ || body_buffered_;
      if (conn_->reused && replayable && !upstream_deadline_->expired()) {
        co_return SendResult::kRetry;
      }
      co_return UpstreamIoFailed("upstream failed");
    }
    bytes_received_ += out.body_bytes();
    co_return SendResult::kSent;
  }

  // Sends the head and the whole request body: the body as the client sends it, piece by piece
  // (the head goes with the first piece), or the body the chain buffered.
  Task<SendResult> SendRequest() {
    WriteList out;
    out.Head(upstream_head_);
    if (body_buffered_ || !has_body_) {
      out.Body(body_);
      // WriteUpstream's steps inline: every GET takes this path, and a nested coroutine frame
      // costs more than the lines.
      auto [ec, written] = co_await asio::async_write(conn_->socket, out.buffers(), kNoThrow);
      if (ec) {
        if (conn_->reused && !upstream_deadline_->expired()) co_return SendResult::kRetry;
        co_return UpstreamIoFailed("upstream failed");
      }
      bytes_received_ += out.body_bytes();
      co_return SendResult::kSent;
    }
    for (;;) {
      auto piece = co_await request_.ReadSome();
      if (!piece) co_return BodyReadFailed(piece.error());
      const bool end = piece->empty() || request_.body_complete();
      out.Body(*piece, chunked_in_);
      if (end && chunked_in_) out.LastChunk();
      if (!out.empty()) {
        const SendResult sent = co_await WriteUpstream(out);
        if (sent != SendResult::kSent) co_return sent;
        out.Clear();
      }
      if (end) co_return SendResult::kSent;
    }
  }

  SendResult FilterBodyTooLarge(std::uint64_t bytes) {
    const bool known = !chunked_in_;
    return Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
                  fmt::format("request body of {}{} bytes exceeds the {} bytes filter {} reads",
                              known ? "" : "over ", known ? bytes : chain_->body_limit(),
                              chain_->body_limit(), chain_->body_reader()->name()));
  }

  // Reads the whole request body into body_, for the chain's filters that read it
  // (FilterChain::body_limit); false (with failure_ set) if it is too long, malformed or does
  // not come.
  Task<bool> BufferBody() {
    const std::uint64_t limit = chain_->body_limit();
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
    body_buffered_ = true;
    co_return true;
  }

  // Reads until the final (non-1xx) response head is parsed.
  Task<SendResult> ReadResponseHead() {
    http::HeadScanner scanner(kUpstreamHeadLimits);
    bool any_byte = false;
    for (;;) {
      const auto state = scanner.Scan(upstream_in_.data());
      if (state == http::HeadScanner::State::kComplete) {
        if (scanner.tabs()) response_parser_.HeadHasTabs();
        auto n = response_parser_.Feed(upstream_in_.data().substr(0, scanner.head_size()));
        if (!n) co_return BadResponse(n.error().message());
        if (!response_parser_.head_done()) co_return BadResponse("incomplete response head");
        upstream_in_.Consume(*n);
        const int status = response_parser_.response().status;
        if (status >= 100 && status < 200 && status != 101) {
          // An interim response (103 Early Hints, 100 Continue): the final one follows. The
          // server forwards it to HTTP/1.1 clients (RFC 9110 15.2), not to HTTP/1.0 ones nor a
          // 100 after its own 100 Continue.
          http::ResponseHead& interim = response_parser_.response();
          http::RemoveHopByHop(interim.headers);
          interim_reason_ = interim.reason;
          interim_head_.status = status;
          interim_head_.reason = interim_reason_;
          interim_head_.headers = interim.headers;
          response_parser_.Reset();
          if (req_.method == "HEAD") response_parser_.ExpectNoBody();
          scanner.Reset();
          if (!co_await response_.WriteInterim(interim_head_)) co_return ClientGone();
          continue;
        }
        co_return SendResult::kSent;
      }
      if (state == http::HeadScanner::State::kMalformed) co_return BadResponse(scanner.error());
      if (state != http::HeadScanner::State::kIncomplete) {
        co_return BadResponse("response head too large");
      }
      if (upstream_in_.full() && !upstream_in_.Grow(kUpstreamHeadLimits.max_bytes + 4)) {
        co_return BadResponse("response head too large");
      }
      auto [ec, n] = co_await conn_->socket.async_read_some(
          asio::buffer(upstream_in_.WritePtr(), upstream_in_.WriteSpace()), kNoThrow);
      if (ec) {
        if (!any_byte && conn_->reused && (!has_body_ || body_buffered_) &&
            !upstream_deadline_->expired() && ec != asio::error::operation_aborted) {
          co_return SendResult::kRetry;
        }
        co_return UpstreamIoFailed(any_byte ? "upstream closed the connection mid-response"
                                            : "upstream closed the connection without responding");
      }
      any_byte = true;
      upstream_in_.Commit(n);
    }
  }

  SendResult BadResponse(std::string message) {
    return Failed(ErrorCode::kUpstreamProtocol, reply::kBadUpstreamResponse, std::move(message));
  }

  // Answers what went wrong before the response started (failure_).
  Task<void> UpstreamFailed() {
    DropConnection();
    if (!failure_ || failure_->code() == ErrorCode::kCancelled) co_return;  // no one to tell
    if (failure_->code() == ErrorCode::kDeadlineExceeded) {
      service_series_->timeouts->Add(w_.slot());
    }
    Answer(failure_->code(), failure_code_, failure_->message());
    co_await SendAnswer();
  }

  // The length the client is told for the upstream's response: its Content-Length, none for a
  // streamed body (the server then chunks it, or reads until close to HTTP/1.0).
  std::optional<std::uint64_t> ResponseBodySize(http::ResponseHead& resp) const {
    switch (resp.framing) {
      case http::BodyFraming::kContentLength:
        return resp.content_length;
      case http::BodyFraming::kChunked:
      case http::BodyFraming::kUntilClose:
        return std::nullopt;
      case http::BodyFraming::kNone:
        break;
    }
    // No body: a HEAD response or a 1xx/204/304 keeps the length it declared.
    if (auto declared = resp.headers.Get("content-length")) {
      std::uint64_t value = 0;
      const auto [end, ec] =
          std::from_chars(declared->data(), declared->data() + declared->size(), value);
      if (ec == std::errc() && end == declared->data() + declared->size()) return value;
    }
    if (req_.method == "HEAD") return std::nullopt;
    return 0;
  }

  Task<void> StreamResponse() {
    http::ResponseHead& resp = response_parser_.response();
    status_ = resp.status;
    upstream_status_ = resp.status;
    FilterContext context{req_, *route_, request_.peer().ip, request_id_, body_, reply_, clock_};
    const auto& filters = chain_->filters();
    for (auto it = filters.rbegin(); it != filters.rend(); ++it) (*it)->OnResponse(context, resp);

    http::RemoveHopByHop(resp.headers);
    const std::optional<std::uint64_t> size = ResponseBodySize(resp);
    // The server writes the length (a 204 or 304 keeps the one the upstream sent).
    if (resp.status != 204 && resp.status != 304) resp.headers.Remove("content-length");
    out_head_.status = resp.status;
    out_head_.reason = resp.reason;
    std::swap(out_head_.headers, resp.headers);
    response_.WriteHead(out_head_, size);  // goes out with the first body bytes

    for (;;) {
      std::size_t consumed = 0;
      if (!upstream_in_.empty() && !response_parser_.message_done()) {
        auto n = response_parser_.Feed(upstream_in_.data());
        if (!n) {
          CutShort("upstream_malformed", n.error().message());
          response_.Abort();
          DropConnection();
          co_return;  // the response already started: all we can do is cut it
        }
        consumed = *n;
        const std::span<const std::string_view> chunks(response_parser_.body_chunks());
        std::uint64_t bytes = 0;
        for (std::string_view c : chunks) bytes += c.size();
        if (bytes > 0) {
          if (!co_await response_.WriteBody(chunks)) {
            DropConnection();
            co_return;
          }
          bytes_sent_ += bytes;
        }
      }
      response_parser_.body_chunks().clear();
      upstream_in_.Consume(consumed);
      if (response_parser_.message_done()) break;
      auto [ec, n] = co_await conn_->socket.async_read_some(
          asio::buffer(upstream_in_.WritePtr(), upstream_in_.WriteSpace()), kNoThrow);
      if (ec == asio::error::eof && response_parser_.FinishOnEof()) {
        continue;  // the until-close body ended
      }
      if (ec) {
        if (upstream_deadline_->expired()) {
          service_series_->timeouts->Add(w_.slot());
          CutShort("upstream_timeout", "upstream timed out");
        } else {
          CutShort("upstream_closed", "upstream prematurely closed connection");
        }
        response_.Abort();
        DropConnection();
        co_return;
      }
      upstream_in_.Commit(n);
    }
    // Reuse the upstream connection only after a clean, complete exchange.
    upstream_deadline_.reset();
    if (resp.keep_alive && upstream_in_.empty()) {
      ReleaseConnection();
    } else {
      DropConnection();
    }
    upstream_in_.Release();
    // (The server ends the response: a chunked body's last chunk, or a head still waiting.)
  }

  // The response was cut short by the upstream after its head went to the client (nginx's
  // "upstream prematurely closed connection"): the client saw a status, so the access log keeps
  // it and carries `mark`, and the error log says what happened.
  void CutShort(std::string_view mark, std::string_view why) {
    cut_short_ = mark;
    spdlog::error(
        "{} while sending the response: {} {} from {} (service {}, {} body bytes sent, "
        "request_id {})",
        why, method_, original_target_, endpoint_->id, route_->service, bytes_sent_, request_id_);
  }

  void ReleaseConnection() {
    if (conn_) endpoint_->pool.Release(std::move(conn_));
  }
  void DropConnection() {
    upstream_deadline_.reset();
    if (conn_) endpoint_->pool.Discard(std::move(conn_));
  }

 public:
  // Logs and counts the exchange (a plain call).
  void Finish() {
    DropConnection();  // no-op after a clean exchange; a cancelled one is never pooled
    const auto end = clock_.now();
    if (endpoint_) {
      --endpoint_->in_flight;
      service_series_->in_flight->Add(w_.slot(), -1);
      if (upstream_status_ != 0) {
        service_series_->requests[StatusClass(upstream_status_)]->Add(w_.slot());
        service_series_->duration->Observe(
            w_.slot(), std::chrono::duration<double>(end - upstream_start_).count());
      }
    }
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
  runtime::ReadBuffer upstream_in_;
  http::Parser response_parser_;
  const config::Route* route_ = nullptr;
  const FilterChain* chain_ = nullptr;  // the route's, in snapshot_
  const RouteSeries* route_series_ = nullptr;
  const ServiceSeries* service_series_ = nullptr;
  ServiceState* service_ = nullptr;
  std::shared_ptr<Endpoint> endpoint_;
  std::unique_ptr<upstream::UpstreamConnection> conn_;
  std::optional<runtime::Deadline<tcp::socket>> upstream_deadline_;
  std::string upstream_head_;
  server::ResponseHead out_head_;      // the response head to the client
  server::ResponseHead interim_head_;  // a 1xx response on its way to the client
  std::string interim_reason_;
  LocalReply reply_;  // a local reply (a filter's or Ferry's error), and its head
  server::ResponseHead reply_head_;
  std::string request_id_;
  std::string method_;
  std::string original_target_;
  std::string body_;              // the whole request body when the chain reads it (body_buffered_)
  std::optional<Error> failure_;  // why the exchange could not go on (UpstreamFailed)
  std::string_view failure_code_;  // its JSON code
  TimePoint start_{};
  TimePoint upstream_start_{};
  std::chrono::system_clock::time_point wall_start_{};
  std::uint64_t bytes_received_ = 0;
  std::uint64_t bytes_sent_ = 0;
  int status_ = 0;
  int upstream_status_ = 0;
  std::string_view cut_short_;  // the access log's "error" mark (CutShort); empty if none
  bool has_body_ = false;       // the request has a body (declared, or chunked)
  bool chunked_in_ = false;     // it is streamed without a declared length
  bool upstream_started_ = false;
  bool body_buffered_ = false;
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
