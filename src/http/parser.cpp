#include "http/parser.hpp"

#include <fmt/format.h>
#include <llhttp.h>

#include <algorithm>

#include "http/simple_head.hpp"
#include "http/trailers.hpp"

namespace ferry::http {
namespace {

// Makes the tabs in the white space around each field value spaces, which llhttp reads as
// white space everywhere (RFC 9110 5.6.3: OWS is SP or HTAB). Tabs inside a value stay.
void SpaceOutTabs(std::string& head) {
  const auto ows = [](char c) { return c == ' ' || c == '\t'; };
  std::size_t line = head.starts_with("\r\n") ? 2 : 0;  // a skipped empty line
  line = head.find("\r\n", line);                       // past the start line
  while (line != std::string::npos) {
    line += 2;
    const std::size_t end = head.find("\r\n", line);
    if (end == std::string::npos || end == line) break;  // the blank line: end of the head
    const std::size_t colon = head.find(':', line);
    if (colon < end) {
      for (std::size_t i = colon + 1; i < end && ows(head[i]); ++i) head[i] = ' ';
      for (std::size_t i = end; i > colon + 1 && ows(head[i - 1]); --i) head[i - 1] = ' ';
    }
    line = end;
  }
}

}  // namespace

struct Parser::Callbacks {
  static Parser& Self(llhttp_t* p) { return *static_cast<Parser*>(p->data); }

  static int OnMessageBegin(llhttp_t* p) {
    Parser& s = Self(p);
    s.head_done_ = false;
    s.message_done_ = false;
    return 0;
  }
  static int OnUrl(llhttp_t* p, const char* at, std::size_t len) {
    Self(p).request_.target.append(at, len);
    return 0;
  }
  static int OnStatus(llhttp_t* p, const char* at, std::size_t len) {
    Self(p).response_.reason.append(at, len);
    return 0;
  }
  static int OnMethod(llhttp_t* p, const char* at, std::size_t len) {
    Self(p).request_.method.append(at, len);
    return 0;
  }
  static int OnHeaderField(llhttp_t* p, const char* at, std::size_t len) {
    Parser& s = Self(p);
    if (s.in_value_ && !s.FlushField()) return -1;
    if (s.head_done_ && !s.CountTrailer(len)) return -1;
    s.field_.append(at, len);
    return 0;
  }
  static int OnHeaderValue(llhttp_t* p, const char* at, std::size_t len) {
    Parser& s = Self(p);
    if (s.head_done_ && !s.CountTrailer(len)) return -1;
    s.in_value_ = true;
    s.value_.append(at, len);
    return 0;
  }
  static int OnHeadersComplete(llhttp_t* p) {
    Parser& s = Self(p);
    if ((s.in_value_ || !s.field_.empty()) && !s.FlushField()) return -1;
    s.FillHead();
    s.head_done_ = true;
    // A response to HEAD, and a 1xx, 204 or 304 whatever its Content-Length or
    // Transfer-Encoding say (RFC 9110 6.4.1), has no body: llhttp 8.1 would read one for the
    // status codes, and wait for bytes that never come or eat the next response.
    if (s.no_body_ || (s.kind_ == Kind::kResponse && s.response_.framing == BodyFraming::kNone)) {
      s.response_.framing = BodyFraming::kNone;
      return 1;  // no body: go on to on_message_complete, which pauses
    }
    // Pause only when a body follows; otherwise llhttp goes straight on to on_message_complete
    // (which pauses), so the caller sees head_done() and message_done() from the same Feed().
    const BodyFraming framing =
        s.kind_ == Kind::kRequest ? s.request_.framing : s.response_.framing;
    return framing == BodyFraming::kNone ? 0 : HPE_PAUSED;
  }
  static int OnBody(llhttp_t* p, const char* at, std::size_t len) {
    Parser& s = Self(p);
    s.body_bytes_ += len;
    s.body_chunks_.emplace_back(at, len);
    return 0;
  }
  static int OnMessageComplete(llhttp_t* p) {
    Parser& s = Self(p);
    // The last trailer field (a chunked body's), if any, is still pending.
    if ((s.in_value_ || !s.field_.empty()) && !s.FlushField()) return -1;
    s.message_done_ = true;
    return HPE_PAUSED;
  }

  static const llhttp_settings_t& Settings() {
    static const llhttp_settings_t settings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = OnMessageBegin;
      s.on_url = OnUrl;
      s.on_status = OnStatus;
      s.on_method = OnMethod;
      s.on_header_field = OnHeaderField;
      s.on_header_value = OnHeaderValue;
      s.on_headers_complete = OnHeadersComplete;
      s.on_body = OnBody;
      s.on_message_complete = OnMessageComplete;
      return s;
    }();
    return settings;
  }
};

Parser::Parser(Kind kind, bool simple_heads)
    : kind_(kind), llhttp_(std::make_unique<llhttp_t>()), simple_heads_(simple_heads) {
  llhttp_init(llhttp_.get(), kind == Kind::kRequest ? HTTP_REQUEST : HTTP_RESPONSE,
              &Callbacks::Settings());
  llhttp_->data = this;
}

Parser::~Parser() = default;

bool Parser::FlushField() {
  // llhttp (built without LLHTTP_STRICT_MODE) accepts a space in a name and an empty name;
  // `Transfer Encoding` must not reach an upstream that reads it as Transfer-Encoding.
  if (!IsToken(field_)) {
    bad_name_ = true;
    return false;
  }
  // llhttp drops white space before a value but keeps it after; it is not part of the value.
  while (!value_.empty() && (value_.back() == ' ' || value_.back() == '\t')) value_.pop_back();
  if (head_done_) {
    if (++trailer_fields_ > kMaxTrailerFields) {
      trailers_too_large_ = true;
      return false;
    }
    AddTrailer(trailers_, field_, value_);
  } else if (kind_ == Kind::kRequest) {
    request_.headers.Add(field_, value_);
  } else {
    response_.headers.Add(field_, value_);
  }
  field_.clear();
  value_.clear();
  in_value_ = false;
  return true;
}

bool Parser::CountTrailer(std::size_t bytes) {
  trailer_bytes_ += bytes;
  if (trailer_bytes_ <= kMaxTrailerBytes) return true;
  trailers_too_large_ = true;
  return false;
}

void Parser::FillHead() {
  llhttp_t* p = llhttp_.get();
  const bool chunked = (p->flags & F_CHUNKED) != 0;
  const bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  const bool keep_alive = llhttp_should_keep_alive(p) != 0;
  if (kind_ == Kind::kRequest) {
    request_.version_minor = llhttp_get_http_minor(p);
    request_.keep_alive = keep_alive;
    if (chunked) {
      request_.framing = BodyFraming::kChunked;
    } else if (has_length && p->content_length > 0) {
      request_.framing = BodyFraming::kContentLength;
      request_.content_length = p->content_length;
    } else {
      request_.framing = BodyFraming::kNone;
    }
    // Expect is a list, and repeated lines are one list (RFC 9110 5.3).
    request_.headers.ForEach([this](const Headers::Field& f) {
      if (EqualsIgnoreCase(f.name, "expect") && HasToken(f.value, "100-continue")) {
        request_.expect_continue = true;
      }
    });
  } else {
    response_.status = llhttp_get_status_code(p);
    response_.version_minor = llhttp_get_http_minor(p);
    response_.keep_alive = keep_alive;
    const int st = response_.status;
    if ((st >= 100 && st < 200) || st == 204 || st == 304) {
      response_.framing = BodyFraming::kNone;
    } else if (chunked) {
      response_.framing = BodyFraming::kChunked;
    } else if (has_length) {
      response_.framing = p->content_length > 0 ? BodyFraming::kContentLength : BodyFraming::kNone;
      response_.content_length = p->content_length;
    } else {
      response_.framing = BodyFraming::kUntilClose;
      response_.keep_alive = false;
    }
  }
}

Result<std::size_t> Parser::Feed(std::string_view data) {
  if (message_done_) return std::size_t{0};
  if (simple_) return FeedSimpleBody(data);
  if (!head_done_) {
    // The caller feeds a whole head at once (it has found its end): size the header storage
    // for it, with room for the few fields the proxy adds.
    Headers& h = kind_ == Kind::kRequest ? request_.headers : response_.headers;
    if (h.arena_bytes() == 0) h.Reserve(data.size() + 128, 16);
  }
  if (!started_ && !data.empty()) {
    started_ = true;
    if (kind_ == Kind::kRequest && simple_heads_) {
      if (const std::size_t n = ParseSimpleRequestHead(data, &request_)) {
        simple_ = true;
        head_done_ = true;
        message_done_ = request_.framing == BodyFraming::kNone;  // or Content-Length framing
        return n;
      }
      request_.headers.Clear();  // what the fast path added before it gave up
    }
  }
  if (tabs_ && !head_done_) {
    // The copy ends with the head: llhttp pauses there, so no body view points into it.
    tabs_ = false;
    const std::size_t blank = data.find("\r\n\r\n");
    spaced_.assign(data.substr(0, blank == std::string_view::npos ? data.size() : blank + 4));
    SpaceOutTabs(spaced_);
    return Execute(spaced_);
  }
  return Execute(data);
}

Result<std::size_t> Parser::Execute(std::string_view data) {
  llhttp_t* p = llhttp_.get();
  const llhttp_errno_t err = llhttp_execute(p, data.data(), data.size());
  if (err == HPE_OK) return data.size();
  if (err == HPE_PAUSED) {
    const char* pos = llhttp_get_error_pos(p);
    llhttp_resume(p);
    return static_cast<std::size_t>(pos - data.data());
  }
  if (err == HPE_PAUSED_UPGRADE) {
    // Upgrades (WebSocket) come with a later issue; for now the request is answered without one.
    const char* pos = llhttp_get_error_pos(p);
    llhttp_resume_after_upgrade(p);
    return static_cast<std::size_t>(pos - data.data());
  }
  const ErrorCode code =
      kind_ == Kind::kRequest ? ErrorCode::kInvalidArgument : ErrorCode::kUpstreamProtocol;
  return Fail(code,
              fmt::format("malformed HTTP {}: {}", kind_ == Kind::kRequest ? "request" : "response",
                          trailers_too_large_ ? fmt::format("trailers exceed {} bytes or {} fields",
                                                            kMaxTrailerBytes, kMaxTrailerFields)
                          : bad_name_         ? std::string("header field name is not a token")
                                              : std::string(llhttp_get_error_reason(p))));
}

Result<std::size_t> Parser::FeedSimpleBody(std::string_view data) {
  const std::uint64_t left = request_.content_length - body_bytes_;
  const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(left, data.size()));
  if (n > 0) {
    body_chunks_.emplace_back(data.data(), n);
    body_bytes_ += n;
  }
  message_done_ = body_bytes_ == request_.content_length;
  return n;
}

void Parser::Release() {
  Reset();
  request_ = Http1RequestHead();
  response_ = ResponseHead();
  field_ = std::string();
  value_ = std::string();
  spaced_ = std::string();
  trailers_ = Headers();
  body_chunks_ = std::vector<std::string_view>();
}

Result<void> Parser::FinishOnEof() {
  if (message_done_) return Ok();
  const llhttp_errno_t err = llhttp_finish(llhttp_.get());
  if (err == HPE_OK || err == HPE_PAUSED) {
    if (head_done_ && (kind_ == Kind::kResponse && response_.framing == BodyFraming::kUntilClose)) {
      message_done_ = true;
      return Ok();
    }
  }
  return Fail(ErrorCode::kConnectionClosed, "connection closed before the message was complete");
}

void Parser::Reset() {
  // llhttp has seen nothing of a message that took the fast path: it is still at a start.
  if (!simple_) llhttp_reset(llhttp_.get());
  // Cleared, not replaced: the strings and the header arena keep their capacity for the next
  // message on the connection.
  request_.Clear();
  response_.Clear();
  field_.clear();
  value_.clear();
  in_value_ = false;
  head_done_ = false;
  message_done_ = false;
  no_body_ = false;
  tabs_ = false;
  bad_name_ = false;
  trailers_too_large_ = false;
  trailers_.Clear();
  trailer_bytes_ = 0;
  trailer_fields_ = 0;
  body_bytes_ = 0;
  body_chunks_.clear();
  started_ = false;
  simple_ = false;
}

}  // namespace ferry::http
