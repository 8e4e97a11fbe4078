#include "http/head_scanner.hpp"

namespace ferry::http {

HeadScanner::State HeadScanner::Scan(std::string_view data) {
  // Leading empty lines before a request line are tolerated by RFC 9112 2.2; we do not: a
  // client that sends them is broken or probing.
  for (std::size_t i = scanned_; i < data.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(data[i]);
    if (i >= limits_.max_bytes) return State::kTooLarge;
    if (c == '\r') {
      if (i + 1 >= data.size()) {
        scanned_ = i;  // decide once the next byte arrives
        return State::kIncomplete;
      }
      if (data[i + 1] != '\n') return Malformed("bare CR in message head");
      continue;
    }
    if (c == '\n') {
      if (i == 0 || data[i - 1] != '\r') return Malformed("bare LF in message head");
      const std::size_t line_len = i - 1 - line_start_;
      if (line_len == 0) {
        if (line_start_ == 0) return Malformed("empty first line");
        head_size_ = i + 1;
        scanned_ = head_size_;
        return State::kComplete;
      }
      if (line_start_ != 0 && ++fields_ > limits_.max_fields) return State::kTooManyFields;
      line_start_ = i + 1;
      continue;
    }
    if (i == line_start_ && line_start_ != 0 && (c == ' ' || c == '\t')) {
      return Malformed("obsolete line folding or whitespace before a header name");
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f) return Malformed("control character in message head");
  }
  scanned_ = data.size();
  if (data.size() > limits_.max_bytes) return State::kTooLarge;
  return State::kIncomplete;
}

}  // namespace ferry::http
