// The request path's extension point: per route, a chain of small filters between the codec
// and the upstream. Each sees the request head after routing and before the upstream is picked
// (and the whole request body, if it asks for it), and the upstream's response head before it
// goes to the client. A filter lets the exchange go on, answers it itself with a local reply
// (status, headers, body), or waits (a store lookup, a delay, a token check) and then decides.
// Deciding at once costs a virtual call and no allocation; waiting is for the filters that need
// it (filter_wait.hpp, which brings in Asio: this header stays free of it).
// Ownership: a route's chain is built by the registry (filter_registry.hpp) into the config
// snapshot, and each exchange keeps the snapshot it started with, so a response runs through
// the chain its request did even across a reload.
// Thread safety: a chain is shared by all workers, so filters are const; per-exchange state
// lives in the context, per-worker state in the worker.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "core/clock.hpp"
#include "http/headers.hpp"
#include "http/message.hpp"

namespace ferry::proxy {

// A response Ferry makes itself instead of asking the upstream: a filter's answer (a 401 with
// WWW-Authenticate, a 429 with Retry-After, a cached body) or one of Ferry's JSON errors
// (local_reply.hpp).
struct LocalReply {
  int status = 0;         // 200-599
  http::Headers headers;  // sent as given, except framing and hop-by-hop fields and
                          // x-request-id: Ferry writes content-length, x-request-id, connection
  std::string body;       // not sent in answer to HEAD, nor with a 204 or 304
  std::string code;       // stable snake_case label of ferry_local_replies_total ("no_route",
                          // "rate_limited"); a filter that leaves it empty is counted by name

  // Starts a new reply (the storage of the last one is kept).
  void Reset(int new_status, std::string_view new_code) {
    status = new_status;
    headers.Clear();
    body.clear();
    code.assign(new_code);
  }
};

class ResponseObserver;  // filter_wait.hpp

// Who is calling, as far as Ferry has verified it: the TLS client's mesh identity (from its
// certificate, set before the chain runs) and what authentication filters found (JWT, API key).
// Authorization reads it; the forwarding filter sends `peer` upstream as x-ferry-caller.
struct CallerIdentity {
  std::string_view peer;  // verified SPIFFE ID of the mesh client ("" if none)
  std::string api_key;    // name of the API key that authenticated ("" if none)
  bool jwt = false;       // a JWT was verified; its claims follow
  // String, number and boolean claims as text; an array claim is one pair per element.
  std::vector<std::pair<std::string, std::string>> claims;
};

// What a filter may read and change about one exchange.
struct FilterContext {
  http::RequestHead& request;  // as it will be sent upstream (target already rewritten)
  const config::Route& route;
  std::string_view client_ip;   // the peer's address, without port
  std::string_view request_id;  // x-request-id, kept from the client or generated
  std::string_view body;        // the whole request body when a filter of the chain reads it
                                // (Filter::body_limit); empty otherwise
  LocalReply& reply;            // what a filter returning Verdict::kReply answers with
  const Clock& clock;           // the proxy's clock (a fake one in tests)
  std::size_t slot;             // the worker's metric slot (a filter's counters: Add(slot))
  // A filter that must see how the exchange ends (the response it stores, or that there was
  // none) adds an observer here in OnRequest or Wait; the exchange owns it from then on.
  std::vector<std::unique_ptr<ResponseObserver>>& observers;
  CallerIdentity& caller;  // filled on the way; kept for the response filters

  // Starts the local reply; the filter then adds headers and a body and returns kReply.
  LocalReply& Answer(int status, std::string_view code = {}) {
    reply.Reset(status, code);
    return reply;
  }
};

enum class Verdict {
  kContinue,  // go on to the next filter, then the upstream
  kReply,     // answer with context.reply; later filters and the upstream are skipped
  kWait,      // the exchange co_awaits the filter's Wait() (filter_wait.hpp) for the verdict
};

class WaitingFilter;

class Filter {
 public:
  virtual ~Filter() = default;
  virtual std::string_view name() const = 0;
  // How many bytes of request body this filter reads: 0 (the default) if it reads none. When a
  // filter of the chain reads it, the exchange buffers the whole body before the chain runs
  // (a body longer than the smallest such limit gets 413) and then forwards what it buffered.
  virtual std::uint64_t body_limit() const { return 0; }
  virtual Verdict OnRequest(FilterContext& context) const = 0;
  // A filter whose OnRequest may return kWait is a WaitingFilter and returns itself here.
  virtual const WaitingFilter* waiting() const { return nullptr; }
  // The upstream's response head before it goes to the client: a filter may change its
  // headers. Runs for the filters of the chain in reverse order, for upstream responses only
  // (a local reply is made whole by whoever makes it).
  virtual void OnResponse(FilterContext&, http::ResponseHead&) const {}
  // A local reply about to go to the client (a filter's, this one's included, or Ferry's own
  // error once the route is known): a filter may change its headers (CORS adds its own, so a
  // page can read a 401). Runs for every filter of the chain in reverse order, whether or not
  // its OnRequest ran.
  virtual void OnLocalReply(FilterContext&, LocalReply&) const {}
};

// The filters of one route, in the order their OnRequest runs.
class FilterChain {
 public:
  void Add(std::unique_ptr<const Filter> filter);
  const std::vector<std::unique_ptr<const Filter>>& filters() const { return filters_; }
  // The smallest body_limit of the filters that read the body; 0 if none does.
  std::uint64_t body_limit() const { return body_limit_; }
  // The filter whose body_limit that is (named in the 413); null if none.
  const Filter* body_reader() const { return body_reader_; }

 private:
  std::vector<std::unique_ptr<const Filter>> filters_;
  std::uint64_t body_limit_ = 0;
  const Filter* body_reader_ = nullptr;
};

}  // namespace ferry::proxy
