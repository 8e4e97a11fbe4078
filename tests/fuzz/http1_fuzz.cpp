// Fuzz target for the HTTP/1.1 parsing path of untrusted bytes: the head scanner and llhttp as
// the proxy drives them (request side and response side), including pipelined messages and
// bodies fed in pieces. Requests are parsed twice, with and without the fast path for simple
// heads (http/simple_head.hpp), and the two transcripts must match byte for byte. Built with
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
void Describe(const ferry::http::RequestHead& h, std::string* out) {
  *out += h.method + ' ' + h.target + " 1." + std::to_string(h.version_minor) + '\n';
  h.headers.ForEach([out](const ferry::http::Headers::Field& f) {
    out->append(f.name).append(": ").append(f.value).append("\n");
  });
  *out += "framing " + std::to_string(static_cast<int>(h.framing)) + " length " +
          std::to_string(h.content_length) + " keep " + std::to_string(h.keep_alive) +
          " continue " + std::to_string(h.expect_continue) + '\n';
}

void Describe(const ferry::http::ResponseHead& h, std::string* out) {
  *out += std::to_string(h.status) + ' ' + h.reason + '\n';
  h.headers.ForEach([out](const ferry::http::Headers::Field& f) {
    out->append(f.name).append(": ").append(f.value).append("\n");
  });
  *out += "framing " + std::to_string(static_cast<int>(h.framing)) + " length " +
          std::to_string(h.content_length) + " keep " + std::to_string(h.keep_alive) + '\n';
}

// Parses `data` as the proxy does (head found by the scanner, then the body in pieces) and
// returns a transcript of what it saw: heads, body bytes, the point and kind of any error.
std::string Drive(std::string_view data, ferry::http::Parser::Kind kind, bool simple_heads) {
  std::string transcript;
  ferry::http::Parser parser(kind, simple_heads);
  for (int messages = 0; messages < 8 && !data.empty(); ++messages) {
    ferry::http::HeadScanner scanner({4096, 64});
    if (scanner.Scan(data) != ferry::http::HeadScanner::State::kComplete) break;
    parser.Reset();
    if (scanner.tabs()) parser.HeadHasTabs();
    auto n = parser.Feed(data.substr(0, scanner.head_size()));
    if (!n) {
      transcript += "head error\n";
      break;
    }
    transcript += "head consumed " + std::to_string(*n) + '\n';
    if (!parser.head_done()) break;
    if (kind == ferry::http::Parser::Kind::kRequest) {
      Describe(parser.request(), &transcript);
    } else {
      Describe(parser.response(), &transcript);
    }
    data.remove_prefix(*n);
    // Feed the body in small pieces, as reads from a socket would arrive.
    while (!parser.message_done() && !data.empty()) {
      const std::size_t piece = data.size() < 7 ? data.size() : 7;
      auto m = parser.Feed(data.substr(0, piece));
      if (!m) {
        transcript += "body error\n";
        return transcript;
      }
      for (std::string_view chunk : parser.body_chunks()) transcript.append(chunk);
      parser.body_chunks().clear();
      data.remove_prefix(*m);
      if (*m == 0 && !parser.message_done()) break;
    }
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
  (void)Drive(input, ferry::http::Parser::Kind::kResponse, true);
  return 0;
}
