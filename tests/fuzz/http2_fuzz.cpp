// Fuzz target for the HTTP/2 frame input of the server (src/server/http2_connection.cpp): the
// input is what a client sends after the preface, fed to a real Server over an in-memory
// connection, with a handler that reads each stream's body and answers with what it saw. The
// properties: nothing crashes or leaks (sanitizers), the handler never sees a head with a
// connection-specific field, a CR, LF or NUL, or a Host that differs from :authority's Host (the
// h2 -> h1 smuggling shapes are refused before it), and every connection ends once the client
// is gone. Built with libFuzzer under the `fuzz` preset, replayed over tests/fuzz/corpus/http2
// (seeds: the refused shapes, H2.CL, H2.TE, CRLF, Host != :authority, and a plain POST) as an
// ordinary test in every other build.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>

#include "http/headers.hpp"
#include "runtime/stream.hpp"
#include "server/server.hpp"

namespace {

void Check(bool holds, const char* what) {
  if (holds) return;
  std::fprintf(stderr, "http2 fuzz: %s\n", what);
  std::abort();
}

class Handler : public ferry::server::Handler {
 public:
  ferry::Task<void> Serve(ferry::server::Request& request,
                          ferry::server::Response& response) override {
    request.head().headers.ForEach([](const ferry::http::Headers::Field& f) {
      for (std::string_view h :
           {"connection", "transfer-encoding", "keep-alive", "upgrade", "proxy-connection", "te"}) {
        Check(!ferry::http::EqualsIgnoreCase(f.name, h), "a connection-specific field passed");
      }
      for (char c : f.value) Check(c != '\r' && c != '\n' && c != '\0', "CR, LF or NUL passed");
    });
    std::uint64_t bytes = 0;
    for (;;) {
      auto piece = co_await request.ReadSome();
      if (!piece || piece->empty()) break;
      for (std::string_view p : *piece) bytes += p.size();
    }
    ferry::server::ResponseHead head;
    head.status = 200;
    body_ = request.head().method + " " + std::to_string(bytes);
    co_await response.Send(head, body_);
  }

 private:
  std::string body_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  ferry::asio::io_context io;
  Handler handler;
  ferry::server::ServerOptions options;
  options.http2 = true;
  options.max_header_bytes = 16 * 1024;
  options.max_body_bytes = 1 << 20;
  auto server = std::make_unique<ferry::server::Server>(io, options, handler);
  auto [server_end, client_end] = ferry::runtime::MemoryStream::Pair(io.get_executor());
  server->Serve(std::move(server_end));
  std::string input = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  input.append(reinterpret_cast<const char*>(data), size);
  ferry::asio::async_write(*client_end, ferry::asio::buffer(input),
                           [](ferry::error_code, std::size_t) {});
  // Drain what the server answers, then go: the connection must end.
  std::string sink(64 * 1024, '\0');
  std::function<void()> read = [&] {
    client_end->async_read_some(ferry::asio::buffer(sink), [&](ferry::error_code ec, std::size_t) {
      if (!ec) read();
    });
  };
  read();
  io.run_for(std::chrono::milliseconds(200));
  client_end->Close();
  io.run_for(std::chrono::milliseconds(200));
  Check(server->connection_count() == 0, "the connection outlived its client");
  server->Close();
  io.run_for(std::chrono::milliseconds(50));
  return 0;
}
