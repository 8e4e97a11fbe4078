// StreamPool's leases over in-memory streams: an HTTP/1 connection is one lease at a time, a
// connection with a larger capacity (the HTTP/2 shape) carries several, and a connection that
// did not end cleanly is closed once its last lease ends.
#include "upstream/stream_pool.hpp"

#include <gtest/gtest.h>

#include <optional>

namespace ferry::upstream {
namespace {

using namespace std::chrono_literals;

template <typename T>
Task<void> StoreInto(Task<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}

// Acquire without connecting: the pool has adopted connections, so it never needs to.
Result<StreamPool::Lease> Take(asio::io_context& io, StreamPool& pool) {
  std::optional<Result<StreamPool::Lease>> out;
  asio::co_spawn(io, StoreInto(pool.Acquire(false, 1s), &out), asio::detached);
  io.restart();
  io.run_for(20ms);
  if (!out) return Fail(ErrorCode::kInternal, "Acquire did not finish");
  return std::move(*out);
}

struct Fixture {
  asio::io_context io;
  // No such endpoint: a connect would fail, so every lease below is on an adopted stream.
  std::shared_ptr<StreamPool> pool =
      StreamPool::Create(io, "127.0.0.1", 1, PoolSettings{2, 100ms, 60s});
  std::unique_ptr<runtime::MemoryStream> Peer(std::uint32_t capacity) {
    auto [ours, theirs] = runtime::MemoryStream::Pair(io.get_executor());
    pool->Adopt(std::move(ours), capacity);
    return std::move(theirs);
  }
};

TEST(StreamPool, AnHttp1ConnectionCarriesOneLeaseAtATime) {
  Fixture f;
  auto peer = f.Peer(1);
  auto first = Take(f.io, *f.pool);
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->reused());
  EXPECT_EQ(f.pool->idle(), 0u);
  first->Release(true);
  EXPECT_EQ(f.pool->idle(), 1u);
  auto second = Take(f.io, *f.pool);
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->reused());
  EXPECT_EQ(f.pool->open(), 1u);
}

TEST(StreamPool, AConnectionWithRoomCarriesSeveralLeases) {
  Fixture f;
  auto peer = f.Peer(2);
  auto a = Take(f.io, *f.pool);
  auto b = Take(f.io, *f.pool);
  ASSERT_TRUE(a && b);
  EXPECT_EQ(&a->stream(), &b->stream());
  EXPECT_EQ(f.pool->open(), 1u);
  a->Release(true);
  b->Release(true);
  EXPECT_EQ(f.pool->idle(), 1u);
}

TEST(StreamPool, ALeaseThatDidNotEndCleanlyClosesItsConnection) {
  Fixture f;
  auto peer = f.Peer(2);
  {
    auto a = Take(f.io, *f.pool);
    auto b = Take(f.io, *f.pool);
    ASSERT_TRUE(a && b);
    a->Release(false);  // no new lease on it; it closes when b ends
    EXPECT_FALSE(peer->PeerGone());
    EXPECT_EQ(f.pool->open(), 1u);
  }  // b dropped without Release: not clean either
  EXPECT_EQ(f.pool->open(), 0u);
  EXPECT_TRUE(peer->PeerGone());
}

TEST(StreamPool, AnIdleConnectionThePeerClosedIsNotHandedOut) {
  Fixture f;
  auto peer = f.Peer(1);
  peer->Close();
  auto lease = Take(f.io, *f.pool);  // the closed one is dropped, the connect to port 1 fails
  ASSERT_FALSE(lease);
  EXPECT_EQ(lease.error().code(), ErrorCode::kConnectFailed);
  EXPECT_EQ(f.pool->open(), 0u);
}

// A connection the peer closed, just used (idle for less than kTrustIdleFor): a request that
// can go again takes it unchecked (its keep-alive race retry covers the close); one that
// cannot gets only connections that pass the check.
TEST(StreamPool, OnlyAReplayableRequestTakesAJustUsedConnectionUnchecked) {
  for (const bool replayable : {true, false}) {
    Fixture f;
    auto peer = f.Peer(1);
    peer->Close();
    StreamPool::Lease lease = f.pool->TryAcquire(replayable);
    EXPECT_EQ(static_cast<bool>(lease), replayable);
    EXPECT_EQ(f.pool->open(), replayable ? 1u : 0u);
  }
}

TEST(StreamPool, TheConnectionLimitIsResourceExhausted) {
  Fixture f;
  auto p1 = f.Peer(1);
  auto p2 = f.Peer(1);
  auto a = Take(f.io, *f.pool);
  auto b = Take(f.io, *f.pool);
  ASSERT_TRUE(a && b);
  auto c = Take(f.io, *f.pool);
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), ErrorCode::kResourceExhausted);
}

}  // namespace
}  // namespace ferry::upstream
