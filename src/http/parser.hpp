// HTTP/1.x parsing on llhttp (the parser of Node.js), strict mode: no lenient flags, so
// Content-Length with Transfer-Encoding, two Content-Lengths, a Transfer-Encoding whose last
// coding is not chunked and bad chunk sizes are all errors; so are header names that are not
// tokens (RFC 9110 5.1), which Debian's llhttp build lets through. White space around a field
// value is not part of it (RFC 9110 5.5), tabs included. Feed() stops after the head and
// after the message, so the caller can act between them (route, connect, stream the body).
// Body bytes are not copied: body_chunks() holds views into the caller's buffer, valid until the
// caller reuses it. Thread safety: one parser per connection direction; not shared.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "core/result.hpp"
#include "http/message.hpp"

struct llhttp__internal_s;

namespace ferry::http {

class Parser {
 public:
  enum class Kind { kRequest, kResponse };
  // `simple_heads`: requests take the fast path of simple_head.hpp when their whole head comes
  // in one Feed (the default); false parses everything with llhttp (tests compare the two).
  explicit Parser(Kind kind, bool simple_heads = true);
  ~Parser();
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  // Parses from `data` and returns how many bytes were consumed. Stops early right after the
  // head (head_done() turns true) and right after the end of the message (message_done()).
  // Body bytes consumed are appended to body_chunks(). A protocol error is kInvalidArgument
  // (requests) or kUpstreamProtocol (responses) with llhttp's reason.
  Result<std::size_t> Feed(std::string_view data);
  // The peer closed its side: completes an until-close body, or errors on a cut message.
  Result<void> FinishOnEof();

  // For responses to HEAD (and other exchanges where the response has no body whatever its
  // headers say). Call before feeding the response.
  void ExpectNoBody() { no_body_ = true; }
  // For a head with tabs in it (HeadScanner::tabs()); call before feeding it, whole. llhttp takes
  // a tab before or after a value as part of it (so `Transfer-Encoding:<TAB>chunked<TAB>` is
  // not chunked), so the parser gives llhttp a copy with those tabs made spaces. Rare: the
  // copy is made only for such heads.
  void HeadHasTabs() { tabs_ = true; }
  // Prepares for the next message on the same connection, keeping the head's storage (its
  // strings and header arena) for it.
  void Reset();
  // Reset, and frees that storage: for a connection going idle, which should hold no memory
  // for a message it may never get.
  void Release();

  bool head_done() const { return head_done_; }
  bool message_done() const { return message_done_; }
  bool simple_head() const { return simple_; }  // this message's head took the fast path
  bool body_started() const { return body_bytes_ > 0; }
  std::uint64_t body_bytes() const { return body_bytes_; }
  Http1RequestHead& request() { return request_; }
  ResponseHead& response() { return response_; }
  std::vector<std::string_view>& body_chunks() { return body_chunks_; }
  // A chunked body's trailer fields once message_done() (owned; those that may not be
  // trailers dropped, http/trailers.hpp); null when none came. More than kMaxTrailerBytes or
  // kMaxTrailerFields is a protocol error.
  const Headers* trailers() const { return trailers_.size() > 0 ? &trailers_ : nullptr; }

 private:
  struct Callbacks;
  void FillHead();
  bool FlushField();                     // false: the name is not a token, or one trailer too many
  bool CountTrailer(std::size_t bytes);  // false: the trailers are too large
  Result<std::size_t> Execute(std::string_view data);
  Result<std::size_t> FeedSimpleBody(std::string_view data);
  Kind kind_;
  std::unique_ptr<llhttp__internal_s> llhttp_;
  Http1RequestHead request_;
  ResponseHead response_;
  std::string field_;   // the header name being read
  std::string value_;   // the header value being read
  std::string spaced_;  // a head's copy with its tabs around values made spaces (HeadHasTabs)
  bool in_value_ = false;
  bool simple_heads_;
  bool started_ = false;  // this message's first bytes were fed
  bool simple_ = false;   // this message's head took the fast path: no llhttp for its body
  bool head_done_ = false;
  bool message_done_ = false;
  bool no_body_ = false;
  bool tabs_ = false;
  bool bad_name_ = false;  // a header name that is not a token: the error llhttp returns is ours
  bool trailers_too_large_ = false;
  Headers trailers_;
  std::size_t trailer_bytes_ = 0;
  std::size_t trailer_fields_ = 0;
  std::uint64_t body_bytes_ = 0;
  std::vector<std::string_view> body_chunks_;
};

}  // namespace ferry::http
