// Fuzz target for the HTTP/1.1 parsing path of untrusted bytes: the head scanner and llhttp as
// the proxy drives them (request side and response side), including pipelined messages and
// bodies fed in pieces. Requests are parsed twice, with and without the fast path for simple
// heads (http/simple_head.hpp), and the two transcripts must match byte for byte. Responses are
// parsed twice too: as answers to GET, and as answers to HEAD (Parser::ExpectNoBody after each
// Reset, as a client that sent HEAD does), which must deliver no body byte and must read the
// first head as the GET pass does. Every input runs every pass, so no byte of it picks a mode and
// each corpus file stays a plain HTTP message. Built with
// libFuzzer under the `fuzz` preset, and replayed over its corpus (tests/fuzz/corpus/http1) as an
// ordinary test in every other build.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "http/head_scanner.hpp"
#include "http/parser.hpp"

namespace {

// What the caller can observe of one parse, written out so two parses can be compared.
void Describe(const ferry::http::Http1RequestHead& h, std::string* out) {
  *out += h.method + ' ' + h.target + " 1." + std::to_string(h.version_minor) + '\n';
  h.headers.ForEach([out](const ferry::http::Headers::Field& f) {
    out->append(f.name).append(": ").append(f.value).append("\n");
  });
  *out += "framing " + std::to_string(static_cast<int>(h.framing)) + " length " +
          std::to_string(h.content_length) + " keep " + std::to_string(h.keep_alive) +
          " continue " + std::to_string(h.expect_continue) + '\n';
}

// The status line and the fields: what a HEAD response shares with the same bytes read as a GET
// response (its framing is kNone, whatever the fields say).
std::string DescribeFields(const ferry::http::ResponseHead& h) {
  std::string out = std::to_string(h.status) + ' ' + h.reason + '\n';
  h.headers.ForEach([&out](const ferry::http::Headers::Field& f) {
    out.append(f.name).append(": ").append(f.value).append("\n");
  });
  return out;
}

void Describe(const ferry::http::ResponseHead& h, std::string* out) {
  *out += DescribeFields(h);
  *out += "framing " + std::to_string(static_cast<int>(h.framing)) + " length " +
          std::to_string(h.content_length) + " keep " + std::to_string(h.keep_alive) + '\n';
}

// A property of the codec that must hold for any input; libFuzzer reports the input that broke it.
void Check(bool holds, const char* what) {
  if (holds) return;
  std::fprintf(stderr, "http1 fuzz: %s\n", what);
  std::abort();
}

// Appends the body bytes of the last Feed, which consumed the `consumed` bytes at `fed`'s start,
// to the transcript: they must lie within those bytes (views into the caller's buffer).
std::size_t TakeBody(ferry::http::Parser& parser, std::string_view fed, std::size_t consumed,
                     std::string* transcript) {
  std::size_t taken = 0;
  for (std::string_view chunk : parser.body_chunks()) {
    Check(chunk.data() >= fed.data() && chunk.data() + chunk.size() <= fed.data() + consumed,
          "a body chunk is not within the bytes the parser consumed");
    transcript->append(chunk);
    taken += chunk.size();
  }
  parser.body_chunks().clear();
  return taken;
}

// Parses `data` as the proxy does (head found by the scanner, then the body in pieces) and
// returns a transcript of what it saw: heads, body bytes, the point and kind of any error.
// `head_request`: responses are answers to HEAD, so they must have no body whatever their fields
// say. `first_head`, if given, gets the status line and fields of the first response head.
std::string Drive(std::string_view data, ferry::http::Parser::Kind kind, bool simple_heads,
                  bool head_request = false, std::string* first_head = nullptr) {
  std::string transcript;
  ferry::http::Parser parser(kind, simple_heads);
  for (int messages = 0; messages < 8 && !data.empty(); ++messages) {
    ferry::http::HeadScanner scanner({4096, 64});
    if (scanner.Scan(data) != ferry::http::HeadScanner::State::kComplete) break;
    parser.Reset();
    if (head_request) parser.ExpectNoBody();  // Reset forgets it
    if (scanner.tabs()) parser.HeadHasTabs();
    const std::string_view head = data.substr(0, scanner.head_size());
    auto n = parser.Feed(head);
    if (!n) {
      transcript += "head error\n";
      break;
    }
    Check(*n <= head.size(), "the parser consumed more than the head it was given");
    transcript += "head consumed " + std::to_string(*n) + '\n';
    if (!parser.head_done()) break;
    if (kind == ferry::http::Parser::Kind::kRequest) {
      Describe(parser.request(), &transcript);
    } else {
      Describe(parser.response(), &transcript);
      if (first_head != nullptr && messages == 0) *first_head = DescribeFields(parser.response());
    }
    if (head_request) {
      Check(parser.message_done() && parser.body_bytes() == 0 && parser.body_chunks().empty(),
            "a response to HEAD has a body");
    }
    // A response framed as bodiless (1xx, 204, 304, Content-Length: 0) ends with its head.
    if (kind == ferry::http::Parser::Kind::kResponse &&
        parser.response().framing == ferry::http::BodyFraming::kNone) {
      Check(parser.message_done() && parser.body_bytes() == 0 && parser.body_chunks().empty(),
            "a response framed without a body has one");
    }
    // The head was fed alone, but llhttp may take its end to be earlier than the scanner did.
    std::uint64_t body = TakeBody(parser, head, *n, &transcript);
    data.remove_prefix(*n);
    // Feed the body in small pieces, as reads from a socket would arrive.
    while (!parser.message_done() && !data.empty()) {
      const std::string_view piece = data.substr(0, 7);
      auto m = parser.Feed(piece);
      if (!m) {
        transcript += "body error\n";
        return transcript;
      }
      Check(*m <= piece.size(), "the parser consumed more than the piece it was given");
      body += TakeBody(parser, piece, *m, &transcript);
      data.remove_prefix(*m);
      if (*m == 0 && !parser.message_done()) break;
    }
    Check(parser.body_bytes() == body, "body_bytes() is not the body bytes delivered");
    if (!parser.message_done()) {
      transcript += parser.FinishOnEof() ? "eof ok\n" : "eof error\n";
      break;
    }
    transcript += "message done\n";
  }
  return transcript;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  // The fast path for simple request heads must see exactly what llhttp sees.
  const std::string fast = Drive(input, ferry::http::Parser::Kind::kRequest, true);
  const std::string llhttp = Drive(input, ferry::http::Parser::Kind::kRequest, false);
  if (fast != llhttp) {
    std::fprintf(stderr, "simple-head fast path differs from llhttp:\n--- fast\n%s--- llhttp\n%s",
                 fast.c_str(), llhttp.c_str());
    std::abort();
  }
  // A response read as an answer to HEAD has the same status and fields as when read as an
  // answer to GET; only what follows the head differs.
  std::string get_head;
  std::string head_head;
  (void)Drive(input, ferry::http::Parser::Kind::kResponse, true, false, &get_head);
  (void)Drive(input, ferry::http::Parser::Kind::kResponse, true, true, &head_head);
  if (!get_head.empty() && !head_head.empty() && get_head != head_head) {
    std::fprintf(stderr, "a response head reads differently after HEAD:\n--- GET\n%s--- HEAD\n%s",
                 get_head.c_str(), head_head.c_str());
    std::abort();
  }
  return 0;
}
