// A blocking HTTP/1.1 server connection over one connected socket: reads request heads and
// bodies (Content-Length or chunked) through one fixed 64 KiB buffer, so a body of any size is
// streamed, never held whole. One thread owns a Connection (not thread-safe); it owns and closes
// the socket. Failures are return values: anything but kOk / true means "close the connection".
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::examples {

struct Request {
  std::string method;                                        // as sent, e.g. "GET"
  std::string target;                                        // path with query, as sent
  int version_minor = 1;                                     // HTTP/1.<version_minor>
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased, in order
  bool chunked = false;              // body framed by Transfer-Encoding: chunked
  std::uint64_t content_length = 0;  // body length when not chunked
  bool keep_alive = true;            // from the version and the Connection header
  bool expect_continue = false;      // Expect: 100-continue was sent

  bool HasBody() const { return chunked || content_length > 0; }
  // The value of the first header with this (lowercase) name, or nullptr.
  const std::string* Find(std::string_view name) const;
};

enum class ReadStatus {
  kOk,          // a request head was read
  kClosed,      // the peer closed (or timed out) cleanly between requests
  kBadRequest,  // malformed or ambiguous framing: answer 400 and close
  kTooLarge,    // the head does not fit the buffer: answer 431 and close
};

class Connection {
 public:
  static constexpr std::size_t kBufferSize = 64 * 1024;

  explicit Connection(int fd);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ReadStatus ReadHead(Request& request);
  // Passes the body of `request` to `sink` piece by piece. False on bad framing or I/O error.
  bool ReadBody(const Request& request, const std::function<void(std::string_view)>& sink);
  // Writes all of `data`. False when the peer is gone.
  bool Write(std::string_view data);

 private:
  bool Fill();                                          // reads more bytes; false on EOF or error
  bool ReadLine(std::string& line, std::size_t limit);  // one CRLF-terminated line, CRLF dropped
  std::size_t Buffered() const { return end_ - begin_; }

  int fd_;
  std::vector<char> buffer_;
  std::size_t begin_ = 0;  // first unread byte
  std::size_t end_ = 0;    // one past the last byte read from the socket
};

// "OK" for 200, "Not Found" for 404, ...; "Status" for codes without a listed phrase.
std::string_view ReasonPhrase(int status);

}  // namespace ferry::examples
