// Fuzz target for the HTTP/1.1 parsing path of untrusted bytes: the head scanner and llhttp as
// the proxy drives them (request side and response side), including pipelined messages and
// bodies fed in pieces. Built with libFuzzer under the `fuzz` preset, and replayed over its
// corpus (tests/fuzz/corpus/http1) as an ordinary test in every other build.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/head_scanner.hpp"
#include "http/parser.hpp"

namespace {

void Drive(std::string_view data, ferry::http::Parser::Kind kind) {
  ferry::http::Parser parser(kind);
  for (int messages = 0; messages < 8 && !data.empty(); ++messages) {
    ferry::http::HeadScanner scanner({4096, 64});
    if (scanner.Scan(data) != ferry::http::HeadScanner::State::kComplete) return;
    parser.Reset();
    auto n = parser.Feed(data.substr(0, scanner.head_size()));
    if (!n || !parser.head_done()) return;
    data.remove_prefix(*n);
    // Feed the body in small pieces, as reads from a socket would arrive.
    while (!parser.message_done() && !data.empty()) {
      const std::size_t piece = data.size() < 7 ? data.size() : 7;
      auto m = parser.Feed(data.substr(0, piece));
      if (!m) return;
      parser.body_chunks().clear();
      data.remove_prefix(*m);
      if (*m == 0 && !parser.message_done()) return;
    }
    if (!parser.message_done()) {
      (void)parser.FinishOnEof();
      return;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  Drive(input, ferry::http::Parser::Kind::kRequest);
  Drive(input, ferry::http::Parser::Kind::kResponse);
  return 0;
}
