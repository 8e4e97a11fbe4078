// Fuzz target for app::ResponseReader, the blocking client's response reader (the CLI's bus
// commands and the example services read every answer with it): the input is what a server
// sends before it closes the connection. It is read whole, one byte at a time, and in pieces of
// sizes drawn from a hash of the input, each time as the answer to GET and to HEAD; every way of
// cutting the same bytes must give the same outcome (state, status, fields, body, error code),
// and an answer to HEAD must have no body. The input picks the cuts through its hash, not through
// bytes of its own, so each corpus file is a plain response. Built with libFuzzer under the
// `fuzz` preset, and replayed over tests/fuzz/corpus/http_client as a test in every other build.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "app/http_client.hpp"

namespace {

using ferry::app::ResponseReader;

// What a caller of ResponseReader can observe once the peer has closed. The error message is
// printed but not compared: only its code is part of the contract.
struct Outcome {
  std::string observed;  // state, status, fields, body and error code
  std::string message;   // the error's message, for the report
};

// Feeds `data` in pieces of the sizes next_piece() returns (each at least 1), then tells the
// reader the peer closed. Pieces after the response is complete are still fed: they must be
// ignored.
template <typename NextPiece>
Outcome Read(std::string_view data, bool head_request, NextPiece next_piece) {
  ResponseReader reader(head_request);
  ResponseReader::State state = ResponseReader::State::kIncomplete;
  while (!data.empty()) {
    const std::string_view piece = data.substr(0, next_piece());
    // The reader copies what it keeps: the caller's buffer is reused after each Read.
    std::string buffer(piece);
    state = reader.Read(buffer);
    buffer.assign(buffer.size(), '\xAA');
    data.remove_prefix(piece.size());
  }
  state = reader.Finish();
  if (state == ResponseReader::State::kIncomplete) {
    std::fprintf(stderr, "http_client fuzz: Finish() left the reader incomplete\n");
    std::abort();
  }

  Outcome out;
  const ferry::app::HttpResponse& response = reader.response();
  if (state == ResponseReader::State::kError) {
    const ferry::ErrorCode code = reader.error().code();
    if (code != ferry::ErrorCode::kUpstreamProtocol &&
        code != ferry::ErrorCode::kConnectionClosed) {
      std::fprintf(stderr, "http_client fuzz: unexpected error code %d: %s\n",
                   static_cast<int>(code), reader.error().message().c_str());
      std::abort();  // kInternal is a codec that stopped making progress
    }
    out.observed = "error " + std::to_string(static_cast<int>(code)) + '\n';
    out.message = reader.error().message();
    return out;
  }
  if (response.status < 200 || response.status > 999) {
    std::fprintf(stderr, "http_client fuzz: a complete response with status %d\n", response.status);
    std::abort();
  }
  if (head_request && !response.body.empty()) {
    std::fprintf(stderr, "http_client fuzz: a response to HEAD has %zu body bytes\n",
                 response.body.size());
    std::abort();
  }
  out.observed = "complete " + std::to_string(response.status) + '\n';
  for (const auto& [name, value] : response.headers) {
    out.observed.append(name).append(": ").append(value).append("\n");
  }
  out.observed.append("body ").append(std::to_string(response.body.size())).append("\n");
  out.observed.append(response.body);
  return out;
}

// FNV-1a: spreads any change of the input over the piece sizes.
std::uint64_t Hash(std::string_view data) {
  std::uint64_t h = 14695981039346656037ULL;
  for (const char c : data) {
    h ^= static_cast<unsigned char>(c);
    h *= 1099511628211ULL;
  }
  return h;
}

void Compare(const Outcome& expected, const Outcome& got, const char* cut, bool head_request) {
  if (expected.observed == got.observed) return;
  std::fprintf(stderr,
               "http_client fuzz: the outcome of a %s answer read %s differs from reading it "
               "whole:\n--- whole (%s)\n%s--- %s (%s)\n%s",
               head_request ? "HEAD" : "GET", cut, expected.message.c_str(),
               expected.observed.c_str(), cut, got.message.c_str(), got.observed.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  for (const bool head_request : {false, true}) {
    const Outcome whole = Read(input, head_request, [size] { return size; });
    Compare(whole, Read(input, head_request, [] { return std::size_t{1}; }), "a byte at a time",
            head_request);
    // Pieces of 1 to 64 bytes from a xorshift generator seeded by the input: cuts anywhere, and
    // pieces that hold the end of one head and the start of the next.
    std::uint64_t x = Hash(input) | 1;
    const auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return static_cast<std::size_t>(x % 64) + 1;
    };
    Compare(whole, Read(input, head_request, next), "in pieces", head_request);
  }
  return 0;
}
