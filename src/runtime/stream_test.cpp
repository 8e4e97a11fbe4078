#include "runtime/stream.hpp"

#include <gtest/gtest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/read.hpp>
#include <cstdlib>
#include <new>
#include <optional>
#include <thread>

#include "runtime/acceptor.hpp"
#include "runtime/immediate_io.hpp"

// Counts allocations, so a test can check a warm stream reads and writes without any.
static std::size_t g_allocations = 0;
#if defined(__SANITIZE_ADDRESS__)
// ASan owns operator new and delete (a replacement here mixes its allocations with free(), an
// alloc-dealloc mismatch): count every allocation through its malloc hook instead, which sees
// operator new and malloc alike. The header declaring it is not shipped with GCC 12.
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*,
                                                                             std::size_t),
                                                         void (*free_hook)(const volatile void*));
namespace {
void CountAllocation(const volatile void*, std::size_t) { ++g_allocations; }
void IgnoreFree(const volatile void*) {}
const int kHooksInstalled = __sanitizer_install_malloc_and_free_hooks(CountAllocation, IgnoreFree);
}  // namespace
#else
void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace ferry::runtime {
namespace {

using namespace std::chrono_literals;

// Runs the loop until `done` or a second has passed.
template <typename Pred>
void RunUntil(asio::io_context& io, Pred done) {
  const auto until = std::chrono::steady_clock::now() + 1s;
  while (!done() && std::chrono::steady_clock::now() < until) {
    io.restart();
    io.run_for(5ms);
  }
}

struct ReadResult {
  error_code ec;
  std::size_t n = 0;
};

TEST(MemoryStream, WhatOneEndWritesTheOtherReads) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  char buf[16];
  std::optional<ReadResult> got;
  b->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) { got = {ec, n}; });
  std::optional<ReadResult> wrote;
  asio::async_write(*a, asio::buffer(std::string_view("hello")), [&](error_code ec, std::size_t n) {
    wrote = {ec, n};
  });
  RunUntil(io, [&] { return got && wrote; });
  ASSERT_TRUE(got && wrote);
  EXPECT_FALSE(got->ec);
  EXPECT_EQ(std::string_view(buf, got->n), "hello");
  EXPECT_EQ(wrote->n, 5u);
}

TEST(MemoryStream, ReadsAtMostTheBufferAndKeepsTheRest) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  asio::async_write(*a, asio::buffer(std::string_view("abcdef")), [](error_code, std::size_t) {});
  char buf[4];
  std::optional<ReadResult> first, second;
  b->async_read_some(asio::buffer(buf, 4), [&](error_code ec, std::size_t n) { first = {ec, n}; });
  RunUntil(io, [&] { return first.has_value(); });
  ASSERT_TRUE(first);
  EXPECT_EQ(std::string_view(buf, first->n), "abcd");
  b->async_read_some(asio::buffer(buf, 4), [&](error_code ec, std::size_t n) { second = {ec, n}; });
  RunUntil(io, [&] { return second.has_value(); });
  ASSERT_TRUE(second);
  EXPECT_EQ(std::string_view(buf, second->n), "ef");
}

TEST(MemoryStream, ShutdownGivesThePeerEofAndWritesToAClosedPeerFail) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  char buf[4];
  std::optional<ReadResult> got;
  b->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) { got = {ec, n}; });
  a->ShutdownSend();
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->ec, asio::error::eof);
  EXPECT_TRUE(b->PeerGone());
  b->Close();
  std::optional<ReadResult> wrote;
  asio::async_write(*a, asio::buffer(std::string_view("x")), [&](error_code ec, std::size_t n) {
    wrote = {ec, n};
  });
  RunUntil(io, [&] { return wrote.has_value(); });
  ASSERT_TRUE(wrote);
  EXPECT_TRUE(wrote->ec);
}

TEST(MemoryStream, CancelEndsAPendingReadAndAWait) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  char buf[4];
  std::optional<ReadResult> got;
  std::optional<error_code> waited;
  b->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) { got = {ec, n}; });
  a->async_wait_readable([&](error_code ec) { waited = ec; });
  error_code ignored;
  b->cancel(ignored);
  a->cancel(ignored);
  RunUntil(io, [&] { return got && waited; });
  ASSERT_TRUE(got && waited);
  EXPECT_EQ(got->ec, asio::error::operation_aborted);
  EXPECT_EQ(*waited, asio::error::operation_aborted);
}

TEST(MemoryStream, HonoursPerOperationCancellation) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  asio::cancellation_signal signal;
  char buf[4];
  std::optional<ReadResult> got;
  b->async_read_some(asio::buffer(buf),
                     asio::bind_cancellation_slot(signal.slot(), [&](error_code ec, std::size_t n) {
                       got = {ec, n};
                     }));
  signal.emit(asio::cancellation_type::terminal);
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_EQ(got->ec, asio::error::operation_aborted);
}

TEST(MemoryStream, WaitReadableCompletesWhenBytesArriveWithoutTakingThem) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  std::optional<error_code> waited;
  b->async_wait_readable([&](error_code ec) { waited = ec; });
  asio::async_write(*a, asio::buffer(std::string_view("hi")), [](error_code, std::size_t) {});
  RunUntil(io, [&] { return waited.has_value(); });
  ASSERT_TRUE(waited);
  EXPECT_FALSE(*waited);
  char buf[4];
  std::optional<ReadResult> got;
  b->async_read_some(asio::buffer(buf), [&](error_code ec, std::size_t n) { got = {ec, n}; });
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_EQ(std::string_view(buf, got->n), "hi");
}

Task<void> EchoOnce(Acceptor& acceptor) {
  auto stream = co_await acceptor.Accept();
  if (!stream) co_return;
  char buf[64];
  auto [ec, n] = co_await (*stream)->async_read_some(asio::buffer(buf), kNoThrow);
  if (ec) co_return;
  co_await asio::async_write(**stream, asio::buffer(buf, n), kNoThrow);
  (*stream)->ShutdownSend();
}

TEST(TcpStream, AcceptsAndEchoesOnLoopback) {
  asio::io_context io;
  auto acceptor = Acceptor::Open(io, config::Address{"127.0.0.1", 0}, false, 16);
  ASSERT_TRUE(acceptor) << acceptor.error().message();
  asio::co_spawn(io, EchoOnce(**acceptor), asio::detached);
  tcp::socket client(io);
  client.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), (*acceptor)->local_port()));
  TcpStream stream(std::move(client));
  EXPECT_EQ(stream.peer().ip, "127.0.0.1");
  std::optional<ReadResult> wrote, got;
  std::string answer(5, '\0');
  asio::async_write(stream, asio::buffer(std::string_view("ping!")),
                    [&](error_code ec, std::size_t n) {
                      wrote = {ec, n};
                    });
  asio::async_read(stream, asio::buffer(answer), [&](error_code ec, std::size_t n) {
    got = {ec, n};
  });
  RunUntil(io, [&] { return got.has_value(); });
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->ec);
  EXPECT_EQ(answer, "ping!");
  (*acceptor)->Close();
}

// Writes on `a`, reads on `b`, `rounds` times; counts the allocations of the last `measured`.
Task<void> PingPong(Stream& a, Stream& b, int rounds, int measured, std::size_t* allocations) {
  char out[8] = "ping";
  char in[8];
  for (int i = 0; i < rounds; ++i) {
    if (i == rounds - measured) *allocations = g_allocations;
    auto [wec, wn] = co_await asio::async_write(a, asio::buffer(out, 4), kNoThrow);
    auto [rec, rn] = co_await b.async_read_some(asio::buffer(in), kNoThrow);
    if (wec || rec) co_return;
  }
  *allocations = g_allocations - *allocations;
}

Task<void> RawPingPong(tcp::socket& a, tcp::socket& b, int rounds, int measured,
                       std::size_t* allocations) {
  char out[8] = "ping";
  char in[8];
  for (int i = 0; i < rounds; ++i) {
    if (i == rounds - measured) *allocations = g_allocations;
    auto [wec, wn] = co_await asio::async_write(a, asio::buffer(out, 4), kNoThrow);
    auto [rec, rn] = co_await b.async_read_some(asio::buffer(in), kNoThrow);
    if (wec || rec) co_return;
  }
  *allocations = g_allocations - *allocations;
}

// The counter itself counts (else the zero-allocation checks below could not fail).
TEST(AllocationCounter, CountsAnAllocation) {
  const std::size_t before = g_allocations;
  void* p = ::operator new(16);  // a call, not a new-expression: the compiler may not elide it
  EXPECT_EQ(g_allocations, before + 1);
  ::operator delete(p);
}

// The bar: a bare socket, read and written the same way, allocates nothing once warm.
TEST(TcpStream, ABareSocketReadsAndWritesWithoutAllocating) {
  asio::io_context io;
  tcp::acceptor a2(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  tcp::socket c3(io);
  c3.connect(a2.local_endpoint());
  tcp::socket s3 = a2.accept();
  std::size_t allocations = 0;
  bool done = false;
  asio::co_spawn(io, RawPingPong(c3, s3, 200, 100, &allocations),
                 [&](std::exception_ptr) { done = true; });
  RunUntil(io, [&] { return done; });
  EXPECT_EQ(allocations, 0u);
}

TEST(TcpStream, AWarmStreamReadsAndWritesWithoutAllocating) {
  asio::io_context io;
  auto fresh = Acceptor::Open(io, config::Address{"127.0.0.1", 0}, false, 16);
  ASSERT_TRUE(fresh);
  tcp::socket c2(io);
  c2.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), (*fresh)->local_port()));
  std::optional<Result<std::unique_ptr<Stream>>> accepted;
  asio::co_spawn(
      io, (*fresh)->Accept(),
      [&](std::exception_ptr, Result<std::unique_ptr<Stream>> r) { accepted = std::move(r); });
  RunUntil(io, [&] { return accepted.has_value(); });
  ASSERT_TRUE(accepted && *accepted);
  TcpStream c(std::move(c2));
  std::size_t allocations = 0;
  bool done = false;
  asio::co_spawn(io, PingPong(c, ***accepted, 200, 100, &allocations),
                 [&](std::exception_ptr) { done = true; });
  RunUntil(io, [&] { return done; });
  ASSERT_TRUE(done);
  EXPECT_EQ(allocations, 0u);
}

// Two connected TcpStreams on loopback: `a` connected to `b`.
tcp::socket ConnectedTo(asio::io_context& io, const tcp::endpoint& to) {
  tcp::socket socket(io);
  socket.connect(to);
  return socket;
}
struct TcpPair {
  explicit TcpPair(asio::io_context& io)
      : listener(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        a(ConnectedTo(io, listener.local_endpoint())),
        b(listener.accept()) {}
  tcp::acceptor listener;
  TcpStream a;
  TcpStream b;
};

// WriteNow and ReadNow: plain system calls on a TCP stream, would_block where an operation
// must finish the job (a full socket, nothing to read, a stream that is not TCP).
TEST(TcpStream, WriteNowWritesWhatTheSocketTakesAndReadNowTakesWhatArrived) {
  asio::io_context io;
  TcpPair pair(io);
  TcpStream& a = pair.a;
  TcpStream& b = pair.b;

  char in[64];
  error_code ec;
  EXPECT_EQ(ReadNow(b, asio::buffer(in), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);

  const std::array<asio::const_buffer, 3> pieces{asio::buffer(std::string_view("he")),
                                                 asio::buffer(std::string_view("")),
                                                 asio::buffer(std::string_view("llo"))};
  EXPECT_EQ(WriteNow(a, pieces, ec), 5u);
  EXPECT_FALSE(ec);
  std::size_t got = 0;
  for (int i = 0; i < 100 && got < 5; ++i) {  // loopback delivers at once; allow a retry
    got += ReadNow(b, asio::buffer(in + got, sizeof(in) - got), ec);
    if (ec && ec != asio::error::would_block) break;
  }
  EXPECT_EQ(std::string_view(in, got), "hello");

  // More than the socket buffers take: a part is written, the rest is left as would_block,
  // and Skip names exactly the bytes not written.
  const std::string big(16 << 20, 'x');
  const std::array<asio::const_buffer, 2> two{asio::buffer(big), asio::buffer(big)};
  const std::size_t written = WriteNow(a, two, ec);
  EXPECT_EQ(ec, asio::error::would_block);
  EXPECT_GT(written, 0u);
  EXPECT_LT(written, 2 * big.size());
  const auto rest = Skip(two, written);
  std::size_t left = 0;
  for (const auto& r : rest) left += r.size();
  EXPECT_EQ(left, 2 * big.size() - written);

  // EOF once the peer has closed and its bytes are read.
  TcpStream c{tcp::socket(io)};
  EXPECT_EQ(WriteNow(c, pieces, ec), 0u);  // a closed socket: an error, not would_block
  EXPECT_TRUE(ec);
  EXPECT_NE(ec, asio::error::would_block);
  b.Close();
  a.Close();
}

TEST(TcpStream, ReadNowReportsEof) {
  asio::io_context io;
  TcpPair pair(io);
  TcpStream& a = pair.a;
  TcpStream& b = pair.b;
  a.ShutdownSend();
  char in[8];
  error_code ec;
  for (int i = 0; i < 100; ++i) {
    ReadNow(b, asio::buffer(in), ec);
    if (ec != asio::error::would_block) break;
    std::this_thread::sleep_for(1ms);
  }
  EXPECT_EQ(ec, asio::error::eof);
}

TEST(MemoryStream, WriteNowAndReadNowLeaveTheWorkToOperations) {
  asio::io_context io;
  auto [a, b] = MemoryStream::Pair(io.get_executor());
  error_code ec;
  const std::array<asio::const_buffer, 1> one{asio::buffer(std::string_view("x"))};
  EXPECT_EQ(WriteNow(*a, one, ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);
  char in[4];
  EXPECT_EQ(ReadNow(*b, asio::buffer(in), ec), 0u);
  EXPECT_EQ(ec, asio::error::would_block);
}

TEST(Skip, DropsTheFirstBytesAcrossBuffers) {
  const std::array<asio::const_buffer, 3> three{asio::buffer(std::string_view("abc")),
                                                asio::buffer(std::string_view("de")),
                                                asio::buffer(std::string_view("f"))};
  std::string joined;
  for (const auto& r : Skip(three, 4)) joined.append(static_cast<const char*>(r.data()), r.size());
  EXPECT_EQ(joined, "ef");
  EXPECT_TRUE(Skip(three, 6).empty());
  EXPECT_EQ(Skip(three, 0).size(), 3u);
}

}  // namespace
}  // namespace ferry::runtime
