// One proxied request/response exchange: route, the route's filters, pick an endpoint, send the
// request (streaming its body), read the response (streaming its body back), log and count it.
// What goes wrong before the response starts is a ferry::Error whose code's HTTP status
// (core/error.cpp) is the status of the JSON reply.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/container/small_vector.hpp>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "http/head_scanner.hpp"
#include "http/serializer.hpp"
#include "proxy/filter_wait.hpp"
#include "proxy/local_reply.hpp"
#include "proxy/session.hpp"

namespace ferry::proxy {
namespace {

using TimePoint = std::chrono::steady_clock::time_point;

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";

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
  void Body(const std::vector<std::string_view>& chunks, bool chunked) {
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
  ExchangeRunner(Session& session, std::shared_ptr<const Snapshot> snapshot,
                 const ListenerPlan& listener)
      : s_(session),
        w_(session.worker_),
        clock_(w_.clock()),
        snapshot_(std::move(snapshot)),
        listener_(listener),
        req_(session.parser_.request()),
        limits_(listener.config->limits),
        upstream_in_(w_.buffers()),
        response_parser_(http::Parser::Kind::kResponse) {}

  Task<bool> Run() {
    start_ = clock_.now();
    wall_start_ = clock_.wall();
    method_ = req_.method;
    original_target_ = req_.target;
    if (auto id = req_.headers.Get("x-request-id"); id && !id->empty() && id->size() <= 200) {
      request_id_ = std::string(*id);
    } else {
      request_id_ = w_.NewRequestId();
    }
    const bool keep_alive = co_await Proxy();
    Finish();
    co_return keep_alive;
  }

 private:
  enum class SendResult { kSent, kRetry, kFailed };

  // Prepares the JSON error reply (a plain call: see Session::PrepareReply); its status is the
  // table's for `error`.
  void Answer(ErrorCode error, std::string_view code, std::string message) {
    status_ = Describe(error).http_status;
    s_.PrepareReply(error, code, std::move(message), request_id_);
  }
  // Sends the prepared reply; keeps the connection only if the request has no unread body.
  Task<bool> SendAnswer() {
    const bool close = !req_.keep_alive || !s_.parser_.message_done() || response_started_;
    if (response_started_) co_return false;  // too late for a reply: cut the connection
    response_started_ = true;
    const bool head_request = req_.method == "HEAD";
    co_return co_await s_.SendReply(close, head_request);
  }
  // Records why the exchange cannot go on (UpstreamFailed answers it).
  SendResult Failed(ErrorCode error, std::string_view code, std::string message) {
    failure_.emplace(error, std::move(message));
    failure_code_ = code;
    return SendResult::kFailed;
  }
  // The client went away or stopped sending: there is no one to answer (unless its
  // request_timeout passed: UpstreamFailed checks that first).
  SendResult ClientGone() { return Failed(ErrorCode::kCancelled, {}, "the client went away"); }
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

  Task<bool> Proxy() {
    // Origin form ("/...") is the common case; "*" (OPTIONS) and other forms are left as they
    // are; a target with a scheme is the absolute form.
    if (!req_.target.empty() && req_.target[0] != '/' &&
        req_.target.find("://") != std::string::npos && !AdoptAbsoluteForm()) {
      Answer(ErrorCode::kInvalidArgument, reply::kBadRequest,
             "absolute-form target needs an http or https scheme and a host without userinfo");
      co_return co_await SendAnswer();
    }
    if (limits_.max_body_bytes != 0 && req_.framing == http::BodyFraming::kContentLength &&
        req_.content_length > limits_.max_body_bytes) {
      Answer(ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
             fmt::format("request body of {} bytes exceeds the limit of {}", req_.content_length,
                         limits_.max_body_bytes));
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

    http::RemoveHopByHop(req_.headers);
    req_.target = routing::RouteTable::RewriteTarget(*route_, req_.target);
    if (chain_->body_limit() != 0 && req_.framing != http::BodyFraming::kNone) {
      if (!co_await BufferBody()) co_return co_await UpstreamFailed();
    }
    FilterContext context{req_, *route_, s_.client_ip_, request_id_, body_, s_.reply_, clock_};
    for (const auto& filter : chain_->filters()) {
      // Deciding at once is the common case: no coroutine frame for it.
      Verdict verdict = filter->OnRequest(context);
      if (verdict == Verdict::kWait) {
        const WaitingFilter* waiting = filter->waiting();  // null: a bug, answered below
        if (waiting != nullptr) verdict = co_await waiting->Wait(context);
      }
      if (verdict == Verdict::kContinue) continue;
      const int status = s_.reply_.status;
      if (verdict == Verdict::kReply && status >= 200 && status <= 599) {
        if (s_.reply_.code.empty()) s_.reply_.code.assign(filter->name());
        status_ = status;
        s_.reply_request_id_ = request_id_;
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

    if (req_.expect_continue) req_.headers.Remove("expect");
    if (body_buffered_ && req_.framing == http::BodyFraming::kChunked) {
      // The whole body is here: it goes upstream with its length (any trailer is dropped).
      req_.framing = http::BodyFraming::kContentLength;
      req_.content_length = body_.size();
      req_.headers.Set("content-length", std::to_string(body_.size()));
    }
    if (req_.framing == http::BodyFraming::kChunked)
      req_.headers.Add("transfer-encoding", "chunked");
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
      s_.handle_->upstream = &conn_->socket;  // so a final shutdown can cancel it
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
    co_return co_await StreamResponse();
  }

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
      std::string_view key = s_.client_ip_;
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

  // Sends the head and the whole request body. kRetry: the connection was a reused one that
  // failed before anything could have reached the upstream, and the request can be replayed.
  Task<SendResult> SendRequest() {
    const bool replayable = req_.framing == http::BodyFraming::kNone || body_buffered_;
    if (ShouldContinue()) {
      continue_sent_ = true;
      if (!co_await s_.WriteToClient(kContinue)) co_return ClientGone();
    }
    WriteList out;
    out.Head(upstream_head_);
    if (body_buffered_) out.Body(body_);
    const bool chunked = req_.framing == http::BodyFraming::kChunked;
    for (;;) {
      std::size_t consumed = 0;
      if (!s_.parser_.message_done() && !s_.in_.empty()) {
        auto n = s_.parser_.Feed(s_.in_.data());
        if (!n)
          co_return Failed(ErrorCode::kInvalidArgument, reply::kBadRequest, n.error().message());
        consumed = *n;
        if (limits_.max_body_bytes != 0 && s_.parser_.body_bytes() > limits_.max_body_bytes) {
          co_return BodyTooLarge();
        }
        out.Body(s_.parser_.body_chunks(), chunked);
        if (chunked && s_.parser_.message_done()) out.LastChunk();
      }
      if (!out.empty()) {
        auto [ec, written] = co_await asio::async_write(conn_->socket, out.buffers(), kNoThrow);
        if (ec) {
          if (conn_->reused && replayable && !upstream_deadline_->expired()) {
            co_return SendResult::kRetry;
          }
          co_return UpstreamIoFailed("upstream failed");
        }
        bytes_received_ += out.body_bytes();
      }
      s_.parser_.body_chunks().clear();
      s_.in_.Consume(consumed);
      out.Clear();
      if (s_.parser_.message_done()) co_return SendResult::kSent;
      if (!co_await s_.ReadMore()) co_return ClientGone();
    }
  }

  SendResult BodyTooLarge() {
    return Failed(
        ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
        fmt::format("request body exceeds the limit of {} bytes", limits_.max_body_bytes));
  }

  SendResult FilterBodyTooLarge(std::uint64_t bytes) {
    const bool known = req_.framing == http::BodyFraming::kContentLength;
    return Failed(ErrorCode::kResourceExhausted, reply::kBodyTooLarge,
                  fmt::format("request body of {}{} bytes exceeds the {} bytes filter {} reads",
                              known ? "" : "over ", known ? bytes : chain_->body_limit(),
                              chain_->body_limit(), chain_->body_reader()->name()));
  }

  // Expect: 100-continue: Ferry asks for the body once it is going to read it, unless the body
  // is here already. (A plain call: no coroutine frame on the common path.)
  bool ShouldContinue() const {
    return req_.expect_continue && !continue_sent_ && !s_.parser_.message_done() && s_.in_.empty();
  }

  // Reads the whole request body into body_, for the chain's filters that read it
  // (FilterChain::body_limit); false (with failure_ set) if it is too long, malformed or does
  // not come.
  Task<bool> BufferBody() {
    const std::uint64_t limit = chain_->body_limit();
    if (req_.framing == http::BodyFraming::kContentLength) {
      if (req_.content_length > limit) {
        FilterBodyTooLarge(req_.content_length);
        co_return false;
      }
      body_.reserve(req_.content_length);
    }
    if (ShouldContinue()) {
      continue_sent_ = true;
      if (!co_await s_.WriteToClient(kContinue)) {
        ClientGone();
        co_return false;
      }
    }
    for (;;) {
      if (!s_.parser_.message_done() && !s_.in_.empty()) {
        auto n = s_.parser_.Feed(s_.in_.data());
        if (!n) {
          Failed(ErrorCode::kInvalidArgument, reply::kBadRequest, n.error().message());
          co_return false;
        }
        for (std::string_view chunk : s_.parser_.body_chunks()) body_.append(chunk);
        s_.parser_.body_chunks().clear();
        s_.in_.Consume(*n);
        if (limits_.max_body_bytes != 0 && body_.size() > limits_.max_body_bytes) {
          BodyTooLarge();
          co_return false;
        }
        if (body_.size() > limit) {
          FilterBodyTooLarge(body_.size());
          co_return false;
        }
      }
      if (s_.parser_.message_done()) break;
      if (!co_await s_.ReadMore()) {
        ClientGone();
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
          // An interim response (103 Early Hints, 100 Continue): the final one follows. A proxy
          // forwards the 1xx it did not ask for to HTTP/1.1 clients (RFC 9110 15.2), never to
          // HTTP/1.0 ones; a 100 after Ferry's own 100 Continue would only repeat it.
          const bool forward = req_.version_minor >= 1 && !(status == 100 && continue_sent_);
          if (forward) {
            http::ResponseHead& interim = response_parser_.response();
            http::RemoveHopByHop(interim.headers);
            interim_head_.clear();
            http::AppendResponseHead(interim_head_, status, interim.reason, interim.headers);
          }
          response_parser_.Reset();
          if (req_.method == "HEAD") response_parser_.ExpectNoBody();
          scanner.Reset();
          if (forward && !co_await s_.WriteToClient(interim_head_)) co_return ClientGone();
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
        if (!any_byte && conn_->reused &&
            (req_.framing == http::BodyFraming::kNone || body_buffered_) &&
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
  Task<bool> UpstreamFailed() {
    const bool client_timed_out = s_.deadline_.expired();
    DropConnection();
    if (client_timed_out) {
      // The request body did not arrive within request_timeout: a short grace to say so.
      s_.deadline_.Arm(std::chrono::seconds(1));
      Answer(ErrorCode::kRequestTimeout, reply::kRequestTimeout,
             "request not received within request_timeout");
      co_return co_await SendAnswer();
    }
    if (!failure_ || failure_->code() == ErrorCode::kCancelled) co_return false;  // no one to tell
    if (failure_->code() == ErrorCode::kDeadlineExceeded) {
      service_series_->timeouts->Add(w_.slot());
    }
    Answer(failure_->code(), failure_code_, failure_->message());
    co_return co_await SendAnswer();
  }

  Task<bool> StreamResponse() {
    http::ResponseHead& resp = response_parser_.response();
    status_ = resp.status;
    upstream_status_ = resp.status;
    FilterContext context{req_, *route_, s_.client_ip_, request_id_, body_, s_.reply_, clock_};
    const auto& filters = chain_->filters();
    for (auto it = filters.rbegin(); it != filters.rend(); ++it) (*it)->OnResponse(context, resp);

    http::RemoveHopByHop(resp.headers);
    bool client_keep = req_.keep_alive && !w_.draining();
    bool chunked_out = false;
    if (resp.framing == http::BodyFraming::kChunked ||
        resp.framing == http::BodyFraming::kUntilClose) {
      if (req_.version_minor >= 1) {
        chunked_out = true;
        resp.headers.Add("transfer-encoding", "chunked");
      } else {
        client_keep = false;
      }
    }
    if (!client_keep) {
      resp.headers.Add("connection", "close");
    } else if (req_.version_minor == 0) {
      resp.headers.Add("connection", "keep-alive");
    }
    std::string head;
    http::AppendResponseHead(head, resp.status, resp.reason, resp.headers);
    response_started_ = true;

    WriteList out;
    out.Head(head);
    for (;;) {
      std::size_t consumed = 0;
      if (!upstream_in_.empty() && !response_parser_.message_done()) {
        auto n = response_parser_.Feed(upstream_in_.data());
        if (!n) {
          CutShort("upstream_malformed", n.error().message());
          DropConnection();
          co_return false;  // the response already started: all we can do is cut it
        }
        consumed = *n;
        out.Body(response_parser_.body_chunks(), chunked_out);
      }
      if (chunked_out && response_parser_.message_done()) out.LastChunk();
      if (!out.empty()) {
        if (!co_await WriteToClient(out)) {
          DropConnection();
          co_return false;
        }
        bytes_sent_ += out.body_bytes();
      }
      response_parser_.body_chunks().clear();
      upstream_in_.Consume(consumed);
      out.Clear();
      if (response_parser_.message_done()) break;
      auto [ec, n] = co_await conn_->socket.async_read_some(
          asio::buffer(upstream_in_.WritePtr(), upstream_in_.WriteSpace()), kNoThrow);
      if (ec == asio::error::eof && response_parser_.FinishOnEof()) {
        continue;  // the until-close body ended: the loop writes its last chunk, once
      }
      if (ec) {
        if (upstream_deadline_->expired()) {
          service_series_->timeouts->Add(w_.slot());
          CutShort("upstream_timeout", "upstream timed out");
        } else {
          CutShort("upstream_closed", "upstream prematurely closed connection");
        }
        DropConnection();
        co_return false;
      }
      upstream_in_.Commit(n);
    }
    // Reuse the upstream connection only after a clean, complete exchange.
    upstream_deadline_.reset();
    if (resp.keep_alive && upstream_in_.empty() && s_.parser_.message_done()) {
      ReleaseConnection();
    } else {
      DropConnection();
    }
    upstream_in_.Release();
    co_return client_keep&& s_.parser_.message_done();
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

  Task<bool> WriteToClient(const WriteList& out) {
    if (s_.deadline_.expired()) co_return false;
    auto [ec, n] = co_await asio::async_write(s_.socket_, out.buffers(), kNoThrow);
    co_return !ec;
  }

  void ReleaseConnection() {
    s_.handle_->upstream = nullptr;
    if (conn_) endpoint_->pool.Release(std::move(conn_));
  }
  void DropConnection() {
    s_.handle_->upstream = nullptr;
    upstream_deadline_.reset();
    if (conn_) endpoint_->pool.Discard(std::move(conn_));
  }

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
      e.client = s_.client_address_;
      e.error = cut_short_;
      log->Write(e);
    }
  }

  Session& s_;
  WorkerState& w_;
  const Clock& clock_;
  std::shared_ptr<const Snapshot> snapshot_;  // keeps every plan below (and chain_) alive
  const ListenerPlan& listener_;
  http::RequestHead& req_;
  const config::Limits& limits_;
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
  std::string interim_head_;  // a 1xx response on its way to the client
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
  bool response_started_ = false;
  bool continue_sent_ = false;
  bool upstream_started_ = false;
  bool body_buffered_ = false;
};

Task<bool> Session::Exchange(const std::shared_ptr<const Snapshot>& snapshot,
                             const ListenerPlan& listener) {
  ExchangeRunner runner(*this, snapshot, listener);
  co_return co_await runner.Run();
}

}  // namespace ferry::proxy
